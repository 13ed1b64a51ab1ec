"""The app's state (gui/state.py) without Qt: replacing a project drops everything of the last one,
stale scans are refused, runs are recorded when they start, the default run is the best by validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.project import Project
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_history import best_run, load_run
from tlstudio.gui.state import ASPECTS, AppState, BackboneChoice


def report_of(folder, usable=True):
    return SimpleNamespace(root=Path(folder), usable=usable, images=[], classes={})


def fake_run(folder: Path, status: str, metrics: dict, model: bool = True) -> Path:
    """A run folder as a session leaves it (only what the history reads)."""
    folder.mkdir(parents=True)
    (folder / files.RUN_JSON).write_text(json.dumps({"status": status, "metrics": metrics}))
    (folder / files.METRICS).write_text(json.dumps(metrics))
    (folder / files.SETTINGS).write_text(json.dumps({"backbone": "b.keras"}))
    if model:
        (folder / files.MODEL).write_bytes(b"model")
    return folder


def test_the_state_module_imports_no_qt():
    code = "import sys, tlstudio.gui.state; print([m for m in sys.modules if m.startswith('PySide6')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_replacing_the_project_drops_everything_of_the_last_one(tmp_path):
    state = AppState()
    heard: list[str] = []
    for aspect in ASPECTS:
        state.subscribe(aspect, lambda a=aspect: heard.append(a))
    state.replace_project(Project(path=tmp_path / "a.tlstudio.json", data_dir=str(tmp_path)))
    state.set_report(report_of(tmp_path))
    state.set_backbone(BackboneChoice(SimpleNamespace(name="B", source="b.keras"), "imagenet", 32))
    state.set_plan(FreezePlan("top", 2))
    assert state.missing_steps() == []
    heard.clear()

    state.replace_project(Project(path=tmp_path / "b.tlstudio.json"))
    assert state.report is None and state.backbone is None and state.plan is None
    assert state.selected_run is None and state.project.data_dir is None
    assert len(state.missing_steps()) == 2
    assert {"project", "data", "backbone", "plan", "runs", "selected_run"} <= set(heard)
    assert heard[0] == "project"


def test_a_scan_of_another_folder_is_refused(tmp_path):
    """A scan started for the last project that ends after New must not show up in the new one."""
    state = AppState(Project(data_dir=str(tmp_path / "new")))
    assert not state.set_report(report_of(tmp_path / "old"))
    assert state.report is None
    assert state.set_report(report_of(tmp_path / "new"))
    state.set_data_dir(str(tmp_path / "other"))
    assert state.report is None  # the report of the folder left behind goes with it


def test_another_backbone_drops_the_freeze_plan(tmp_path):
    state = AppState()
    a = BackboneChoice(SimpleNamespace(name="A", source=""), "imagenet", 224)
    state.set_backbone(a)
    state.set_plan(FreezePlan("none"))
    state.set_backbone(BackboneChoice(a.spec, "none", 160))  # the same backbone, other weights
    assert state.plan == FreezePlan("none")
    state.set_backbone(BackboneChoice(SimpleNamespace(name="B", source=""), "imagenet", 224))
    assert state.plan is None


def test_an_unknown_aspect_is_refused():
    with pytest.raises(ValueError, match="no aspect"):
        AppState().subscribe("reports", lambda: None)  # type: ignore[arg-type]


def test_a_run_is_in_the_project_file_from_its_start_and_reads_interrupted_once_its_process_died(tmp_path):
    project = Project(path=tmp_path / "p.tlstudio.json")
    project.save()
    state = AppState(project)
    run = tmp_path / "p-runs" / "run-1"
    state.run_started(run)
    on_disk = Project.load(project.path)
    assert [r["status"] for r in on_disk.runs] == ["running"] and "started" in on_disk.runs[0]
    # the run claims its folder and writes its record; then its process dies (a pid that is gone)
    run.mkdir(parents=True)
    (run / files.RUN_JSON).write_text(json.dumps({"status": "running", "data_dir": str(tmp_path)}))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / files.LOCK).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "since": 0}))
    assert [r.status for r in AppState(Project.load(project.path)).runs] == ["interrupted"]
    # a folder claimed by a dead process before it wrote run.json reads interrupted too
    (run / files.RUN_JSON).unlink()
    assert load_run(run).status == "interrupted"


def test_a_run_refused_before_it_made_its_folder_leaves_the_project(tmp_path):
    project = Project(path=tmp_path / "p.tlstudio.json")
    state = AppState(project)
    run = tmp_path / "never-made"
    state.run_started(run)
    state.run_ended(run, "failed", {}, recorded=False)
    assert Project.load(project.path).runs == []


def test_the_default_run_is_the_best_finished_run_by_validation_not_the_latest(tmp_path):
    runs = tmp_path / "runs"
    transfer = fake_run(runs / "1-transfer", "completed", {"val_accuracy": 0.70, "val_loss": 0.9})
    fake_run(runs / "2-baseline", "completed", {"val_accuracy": 0.55, "val_loss": 1.2})
    fake_run(runs / "3-failed", "failed", {"val_accuracy": 0.99}, model=False)
    fake_run(runs / "4-no-model", "completed", {"val_accuracy": 0.99}, model=False)
    project = Project(path=tmp_path / "p.tlstudio.json")
    for folder in sorted(runs.iterdir()):
        project.record_run(folder, "completed", {})
    state = AppState(project)
    assert state.selected_run == transfer.absolute()
    assert best_run(state.runs).name == "1-transfer"
    # ties on accuracy go to the lower validation loss, then the newer run
    fake_run(runs / "5-same-acc-lower-loss", "stopped", {"val_accuracy": 0.70, "val_loss": 0.5})
    project.record_run(runs / "5-same-acc-lower-loss", "stopped", {})
    assert best_run(state.runs).name == "5-same-acc-lower-loss"
    # a person's choice holds until a run ends; then the best is selected again, whichever is newest
    heard = []
    state.subscribe("selected_run", lambda: heard.append(state.selected_run))
    state.select_run(runs / "2-baseline")
    assert state.selected_record().name == "2-baseline" and len(heard) == 1
    worse = fake_run(runs / "6-worse", "completed", {"val_accuracy": 0.1})
    state.run_ended(worse, "completed", {"val_accuracy": 0.1}, recorded=True)
    assert state.selected_record().name == "5-same-acc-lower-loss"
    better = fake_run(runs / "7-better", "completed", {"val_accuracy": 0.9})
    state.run_ended(better, "completed", {"val_accuracy": 0.9}, recorded=True)
    assert state.selected_run == better.absolute()


def test_the_steps_done_follow_the_state(tmp_path):
    state = AppState(Project(data_dir=str(tmp_path)))
    assert not any(state.steps_done().values())
    state.set_report(report_of(tmp_path, usable=False))
    assert not state.steps_done()["Data"] and "usable data folder" in state.missing_steps()[0]
    state.set_report(report_of(tmp_path))
    assert state.steps_done()["Data"]
