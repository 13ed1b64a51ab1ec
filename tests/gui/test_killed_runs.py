"""A run whose process is killed (the app's, or `train --project`'s) stays in its project, reads as
interrupted wherever runs are listed, and resumes from the app and from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory import make_colour_dataset

from tlstudio.core.project import Project
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_history import project_runs
from tlstudio.core.settings import Augmentation, TrainSettings

pytestmark = pytest.mark.slow
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "QT_QPA_PLATFORM": "offscreen"}

# The real window in a process of its own: it opens the project and presses Start once it can.
APP = """
import sys
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from tlstudio.gui.main_window import MainWindow

app = QApplication(sys.argv[:1])
window = MainWindow(QSettings(sys.argv[2], QSettings.Format.IniFormat))
window.show()
window.open_project(sys.argv[1])

def start_when_ready():
    ready = window.state.tensorflow_ready and not window.state.missing_steps()
    if ready and window.layers.model.tree is not None:
        window.start_training()
        print("started", flush=True)
    else:
        QTimer.singleShot(100, start_when_ready)

QTimer.singleShot(100, start_when_ready)
app.exec()
"""


def tlstudio(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tlstudio", *args], capture_output=True, text=True, env=ENV, timeout=600
    )


def a_project(tmp_path: Path, backbone: Path) -> Path:
    data = make_colour_dataset(tmp_path / "data", per_class=15, seed=3)
    settings = TrainSettings(
        backbone=str(backbone),
        batch_size=4,
        fine_tune_epochs=20,
        early_stopping_patience=20,
        augmentation=Augmentation(False, 0.0),
    )
    return Project(data_dir=str(data), settings=settings).save(tmp_path / "p.tlstudio.json")


def kill_once_checkpointed(proc: subprocess.Popen, project: Path, timeout: float = 300) -> Path:
    """SIGKILL ``proc`` once the project's run has checkpointed an epoch; returns the run folder."""
    end = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, "the run never checkpointed an epoch"
        runs = Project.load(project).runs
        if runs and (Path(str(runs[0]["run_dir"])) / files.CHECKPOINTS / "last.json").is_file():
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    return Path(str(runs[0]["run_dir"]))


def listed(project: Path) -> list[dict]:
    done = tlstudio("runs", str(project), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_a_run_killed_with_its_app_stays_in_the_project_and_resumes_in_the_app(
    window, qtbot, tmp_path, tiny_backbone_file
):
    project = a_project(tmp_path, tiny_backbone_file)
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(project), str(tmp_path / "settings.ini")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    run = kill_once_checkpointed(app, project)
    assert [r.status for r in project_runs(Project.load(project).runs)] == ["interrupted"]
    assert [(Path(r["run_dir"]), r["status"]) for r in listed(project)] == [(run, "interrupted")]

    window.open_project(str(project))  # the app, opened again: the run is there, with Resume
    evaluate = window.evaluate
    assert evaluate.runs.rowCount() == 1 and evaluate.runs.item(0, 1).text() == "interrupted"
    assert "interrupted" in window.statusBar().currentMessage()  # the window says so on opening
    window.go_to("Evaluate")
    evaluate.runs.selectRow(0)
    assert evaluate.resume_button.isEnabled() and evaluate.resume_button.isVisibleTo(window)
    before = json.loads((run / files.CHECKPOINTS / "last.json").read_text())["epoch"]
    evaluate.resume_button.click()
    assert window.train.is_running() and f"(resuming {run.name}…)" in window.windowTitle()
    qtbot.waitUntil(lambda: not window.train.is_running(), timeout=300_000)
    assert window.windowTitle() == "TL Studio — p" and window.state.task is None
    info = json.loads((run / files.RUN_JSON).read_text())
    assert info["status"] == "completed", info
    epochs = [e["epoch"] for e in json.loads((run / files.HISTORY).read_text())["epochs"]]
    assert epochs == list(range(len(epochs))) and len(epochs) > before + 1  # it went on, not anew
    assert [r["status"] for r in listed(project)] == ["completed"]
    assert window.export.run_dir == run  # a resumed run that ends with a model is the one shown


def test_a_killed_train_project_run_stays_in_the_project_and_resumes_from_the_cli(
    tmp_path, tiny_backbone_file
):
    project = a_project(tmp_path, tiny_backbone_file)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tlstudio", "train", "--project", str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    run = kill_once_checkpointed(proc, project)
    assert Project.load(project).runs[0]["status"] == "running"  # what the project last heard
    assert [r["status"] for r in listed(project)] == ["interrupted"]  # what the run folder says
    table = tlstudio("runs", str(project))
    assert "interrupted" in table.stdout and run.name in table.stdout
    done = tlstudio("train", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["status"] for r in listed(project)] == ["completed"]


def test_a_train_project_run_refused_before_it_began_is_not_left_in_the_project(tmp_path):
    """ImageNet weights that are not in the (empty) Keras cache, offline: the session refuses before
    it claims a folder, and the entry recorded at the start goes again."""
    project = Project(
        data_dir=str(make_colour_dataset(tmp_path / "data", per_class=4)),
        settings=TrainSettings(backbone="MobileNetV3Small"),
    ).save(tmp_path / "p.tlstudio.json")
    done = subprocess.run(
        [sys.executable, "-m", "tlstudio", "train", "--project", str(project)],
        capture_output=True,
        text=True,
        env=ENV | {"KERAS_HOME": str(tmp_path / "keras")},
        timeout=600,
    )
    assert done.returncode != 0 and "weights" in done.stderr.lower(), done.stderr[-2000:]
    assert Project.load(project).runs == []
