"""`tlstudio auto`: from a folder to a verified model with no other option; bad input refused at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from factory import make_colour_dataset

from tlstudio.core.training.auto import step_gains

pytestmark = pytest.mark.slow
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def tlstudio(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tlstudio", *args], capture_output=True, text=True, env=ENV, timeout=900
    )


@pytest.fixture(scope="module")
def blind_backbone(tmp_path_factory) -> Path:
    """A backbone that sees nothing: its features are zero for every image."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(4, 3, padding="same", kernel_initializer="zeros", name="blind"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
        ],
        name="blind",
    )
    path = tmp_path_factory.mktemp("blind") / "blind.keras"
    model.save(path)
    return path


def test_auto_picks_the_better_backbone_trains_and_leaves_verified_exports(
    tmp_path, tiny_backbone_file, blind_backbone
):
    data = make_colour_dataset(tmp_path / "data", per_class=15, seed=3)
    out = tmp_path / "run"
    done = tlstudio(
        "auto", str(data), "--candidates", f"{blind_backbone},{tiny_backbone_file}", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Chose {tiny_backbone_file}" in done.stdout
    assert "after probe: validation accuracy" in done.stdout and "Done in" in done.stdout
    record = json.loads((out / "auto.json").read_text())
    assert record["chosen"] == str(tiny_backbone_file) and record["status"] == "completed"
    assert record["ranking"][0]["backbone"] == str(tiny_backbone_file)
    assert record["steps"] and all(
        0 <= s["interval"][0] <= s["val_accuracy"] <= s["interval"][1] <= 1 for s in record["steps"]
    )
    verified = {e["format"] for e in record["exports"] if e.get("error") is None}
    assert {"saved_model", "tflite", "onnx"} <= verified
    assert (out / "export" / "saved_model").is_dir() and record["metrics"]["test_accuracy"] >= 0.8


def test_auto_refuses_bad_input_at_once(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = tlstudio("auto", str(empty), "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and "not usable" in done.stderr and not (tmp_path / "run").exists()
    data = make_colour_dataset(tmp_path / "data", per_class=4)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    done = tlstudio("auto", str(data), "--out", str(taken))
    assert done.returncode == 2 and "already holds files" in done.stderr
    assert (taken / "mine.txt").read_text() == "keep"
    done = tlstudio("auto", str(data), "--candidates", "NoSuchNet,AlsoNot", "--out", str(tmp_path / "r2"))
    assert done.returncode == 2 and "NoSuchNet" in done.stderr and "AlsoNot" in done.stderr
    assert not (tmp_path / "r2").exists()


def test_step_gains_follow_the_phases_and_wise_ft():
    history = {
        "epochs": [
            {"phase": "probe", "val_accuracy": 0.5},
            {"phase": "probe", "val_accuracy": 0.7},
            {"phase": "fine-tune", "val_accuracy": 0.8},
            {"phase": "fine-tune", "val_accuracy": 0.75},
        ],
        "interpolation": [
            {"alpha": 0.5, "val_loss": 0.4, "val_accuracy": 0.85},
            {"alpha": 1.0, "val_loss": 0.5, "val_accuracy": 0.8},
        ],
    }
    gains = step_gains(history, 20)
    assert [(g.step, g.val_accuracy) for g in gains] == [
        ("probe", 0.7),
        ("fine-tune", 0.8),
        ("WiSE-FT (α 0.5)", 0.85),
    ]
    assert gains[0].interval[0] < 0.7 < gains[0].interval[1]
