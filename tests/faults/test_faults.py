"""Fault cases, each in a real subprocess as a user would meet them: kills, signals, two runs at once,
a replaced backbone, a full disk, hostile files. Every one ends with a clear message and the right
exit code, and never with a silently wrong model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory import make_class_folder, make_colour_dataset

from tlstudio.core.results.run_folder import run_status

pytestmark = pytest.mark.slow
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def tlstudio(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tlstudio", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        **kwargs,
    )


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tlstudio", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def wait_for(path: Path, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_colour_dataset(tmp_path_factory.mktemp("faults") / "data", per_class=15, seed=3)


def long_run(data, backbone, out, *extra):
    """A run with many fine-tune epochs, to be interrupted."""
    return (
        "train", str(data), "--backbone", str(backbone), "--out", str(out), "--batch-size", "4",
        "--fine-tune-epochs", "60", "--patience", "60", *extra,
    )  # fmt: skip


def test_kill_9_mid_run_then_resume_and_export_the_checkpoint(data, tiny_backbone_file, tmp_path):
    run = tmp_path / "run"
    proc = start(*long_run(data, tiny_backbone_file, run))
    wait_for(run / "checkpoints" / "last.json")
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    status = run_status(run)
    assert status["status"] == "interrupted" and status["checkpoint"]
    listed = tlstudio("runs", str(tmp_path))
    assert "interrupted" in listed.stdout, listed.stdout + listed.stderr
    before = json.loads((run / "checkpoints" / "last.json").read_text())["epoch"]
    refused = tlstudio("train", "--resume", str(run), "--fine-tune-epochs", "0")
    assert refused.returncode == 2 and "--fine-tune-epochs" in refused.stderr  # never silently ignored
    stale = run / "export" / "tflite"  # as `export` of the interrupted run leaves it: the old weights
    stale.mkdir(parents=True)
    (stale / "model.tflite").write_bytes(b"from the weights before the resume")
    done = tlstudio("train", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Resuming" in done.stderr
    assert not (run / "export").exists()  # exports of older weights do not outlive them unmarked
    history = json.loads((run / "history.json").read_text())
    epochs = [e["epoch"] for e in history["epochs"]]
    assert epochs == list(range(len(epochs))) and len(epochs) > before + 1  # numbers continue
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["metrics"]["test_accuracy"] >= 0.8
    assert not (run / ".lock").exists()


def test_export_of_an_interrupted_run_uses_its_best_checkpoint(data, tiny_backbone_file, tmp_path):
    run = tmp_path / "run"
    proc = start(*long_run(data, tiny_backbone_file, run))
    wait_for(run / "checkpoints" / "last.json")
    proc.kill()
    proc.wait()
    assert not (run / "model.keras").exists()
    done = tlstudio("export", str(run), "--format", "tflite", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)[0]
    assert result["verification"]["passed"] and (run / "export" / "tflite" / "model.tflite").is_file()
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["exported_from"] == "the best checkpoint of an interrupted run"


def test_sigterm_stops_like_ctrl_c_and_keeps_the_best_model(data, tiny_backbone_file, tmp_path):
    run = tmp_path / "run"
    proc = start(*long_run(data, tiny_backbone_file, run))
    wait_for(run / "checkpoints" / "last.json")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "SIGTERM" in err
    assert json.loads((run / "run.json").read_text())["status"] == "stopped"
    assert (run / "saved_model" / "saved_model.pb").is_file()


def test_two_runs_into_one_folder_the_second_is_refused(data, tiny_backbone_file, tmp_path):
    run = tmp_path / "run"
    first = start(*long_run(data, tiny_backbone_file, run))
    wait_for(run / ".lock")
    second = tlstudio(*long_run(data, tiny_backbone_file, run, "--overwrite"))
    first.kill()
    first.wait()
    assert second.returncode == 1
    assert "in use by another TL Studio run" in second.stderr


def test_an_existing_run_folder_is_refused_unless_overwrite(data, tiny_backbone_file, tmp_path):
    run = tmp_path / "run"
    args = (
        "train",
        str(data),
        "--backbone",
        str(tiny_backbone_file),
        "--out",
        str(run),
        "--fine-tune-epochs",
        "0",
    )
    assert tlstudio(*args).returncode == 0
    (run / "stray.txt").write_text("from an earlier run")
    again = tlstudio(*args)
    assert again.returncode == 1 and "already holds a run" in again.stderr and "--overwrite" in again.stderr
    assert (run / "stray.txt").exists()  # untouched
    fresh = tlstudio(*args, "--overwrite")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert not (run / "stray.txt").exists()
    file_out = tmp_path / "a-file"
    file_out.write_text("x")
    refused = tlstudio("train", str(data), "--backbone", str(tiny_backbone_file), "--out", str(file_out))
    assert refused.returncode == 1 and "is a file" in refused.stderr


def test_a_backbone_replaced_at_the_same_path_gets_new_features(data, tiny_backbone_file, tmp_path):
    import keras
    import numpy as np

    from tlstudio.core.training.feature_cache import feature_key

    model = keras.models.load_model(tiny_backbone_file)
    key = feature_key(model, "manifest", 32)
    assert feature_key(model, "manifest", 32) == key
    model.layers[2].set_weights([w + 0.1 for w in model.layers[2].get_weights()])  # retrained in place
    assert feature_key(model, "manifest", 32) != key
    assert feature_key(keras.models.load_model(tiny_backbone_file), "other manifest", 32) != key
    assert np.isfinite(model.predict(np.zeros((1, 32, 32, 3)), verbose=0)).all()


def test_disk_full_while_checkpointing_ends_with_a_message_not_a_crash(data, tiny_backbone_file, tmp_path):
    run = tmp_path / "run"
    script = (
        "import errno, sys\n"
        "import keras\n"
        "real = keras.Model.save_weights\n"
        "calls = []\n"
        "def full(self, path, *a, **k):\n"
        "    calls.append(path)\n"
        "    if len(calls) > 2:\n"
        "        open(path, 'wb').write(b'partial')\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    return real(self, path, *a, **k)\n"
        "keras.Model.save_weights = full\n"
        "from tlstudio.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *long_run(data, tiny_backbone_file, run)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "No space left on device" in done.stderr and str(run / "checkpoints") in done.stderr
    assert "Traceback" not in done.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and "No space left" in info["message"]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]


def test_too_little_free_space_is_said_before_writing(data, tiny_backbone_file, tmp_path):
    run = tmp_path / "run"
    script = (
        "import shutil, sys, collections\n"
        "Usage = collections.namedtuple('Usage', 'total used free')\n"
        "shutil.disk_usage = lambda p: Usage(10**9, 10**9 - 1000, 1000)\n"
        "from tlstudio.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = (
        "train",
        str(data),
        "--backbone",
        str(tiny_backbone_file),
        "--out",
        str(run),
        "--fine-tune-epochs",
        "0",
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert done.returncode == 1
    assert "not enough free disk space" in done.stderr and "MB needed" in done.stderr


def test_a_fifo_is_refused_before_any_read(data, tmp_path, tiny_backbone_file):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    folder = tmp_path / "model"
    folder.mkdir()
    start_time = time.monotonic()
    done = tlstudio("inspect", str(tmp_path), "--json")
    assert time.monotonic() - start_time < 60
    assert done.returncode in (0, 1)
    from tlstudio.core.data.imagefile import ImageProblem, load_rgb

    with pytest.raises(ImageProblem, match="not a regular file"):
        load_rgb(fifo)
    with pytest.raises(ImageProblem, match="file not found"):
        load_rgb(tmp_path / "missing.png")


def test_a_class_name_with_a_newline_is_refused_by_the_doctor(tmp_path):
    data = tmp_path / "data"
    make_class_folder(data, "good", 4)
    make_class_folder(data, "other", 4, seed=1)
    make_class_folder(data, "bad\nname", 4, seed=2)
    done = tlstudio("inspect", str(data), "--json")
    report = json.loads(done.stdout)
    assert set(report["classes"]) == {"good", "other"}
    assert any("control character" in s["reason"] for s in report["skipped"])


def test_bad_project_files_and_numbers_get_one_line_reasons(tmp_path, data):
    cases = {
        "data_dir": {"format": 1, "data_dir": 123, "settings": {"backbone": "x"}},
        "epochs": {"format": 1, "data_dir": str(data), "settings": {"backbone": "x", "epochs": "abc"}},
        "runs": {"format": 1, "data_dir": str(data), "settings": {"backbone": "x"}, "runs": [1]},
    }
    for field, content in cases.items():
        project = tmp_path / f"{field}.tlstudio.json"
        project.write_text(json.dumps(content))
        done = tlstudio("train", "--project", str(project))
        assert done.returncode == 2, (field, done.stderr)
        assert field in done.stderr and "Traceback" not in done.stderr
    good = tmp_path / "good.tlstudio.json"
    good.write_text(json.dumps({"format": 1, "data_dir": str(data), "settings": {"backbone": "x.keras"}}))
    override = tlstudio("train", "--project", str(good), "--epochs", "3")
    assert override.returncode == 2 and "--epochs" in override.stderr  # refused, never silently ignored
    nan = tlstudio(
        "train", str(data), "--backbone", "x.keras", "--out", str(tmp_path / "r"), "--learning-rate", "nan"
    )
    assert nan.returncode == 2 and "learning_rate" in nan.stderr
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(os.urandom(4000))
    bad = tlstudio("train", str(data), "--backbone", str(garbage), "--out", str(tmp_path / "r2"))
    assert bad.returncode == 1 and "not a readable .keras file" in bad.stderr
    missing = tlstudio("predict", str(tmp_path / "nope"), "x.jpg")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    shutil.rmtree(tmp_path / "r2", ignore_errors=True)
