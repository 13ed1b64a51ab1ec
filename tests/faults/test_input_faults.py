"""Hostile input, each case in a real subprocess as a user would meet it: out-of-range project fields,
a deeply nested or huge project file, malformed per-block rates, impossible image sizes and a .keras
zip bomb. Each is refused with one line, before any run folder is claimed (exit 2), and without a
traceback or the bomb being inflated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from factory import make_colour_dataset

pytestmark = pytest.mark.slow
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def tlstudio(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tlstudio", *args], capture_output=True, text=True, env=ENV, timeout=600
    )


def assert_refused(done: subprocess.CompletedProcess, *words: str, code: int = 2) -> None:
    """Refused with ``code`` and one line that holds each of ``words``, no traceback."""
    said = done.stderr.strip()
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and len(said.splitlines()) == 1, said[-2000:]
    assert len(said) < 400, said[:600]
    for word in words:
        assert word in said, (word, said)


def project_file(tmp_path: Path, name: str, settings: object) -> Path:
    path = tmp_path / f"{name}.tlstudio.json"
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    path.write_text(json.dumps({"format": 1, "data_dir": str(data_dir), "settings": settings}))
    return path


OUT_OF_RANGE = [  # (the field as the message names it, settings beside a backbone)
    ("dense_units", {"head": {"dense_units": [-5]}}),
    ("dense_units", {"head": {"dense_units": [0, 64]}}),
    ("dense_units", {"head": {"dense_units": ["64"]}}),
    ("dense_units", {"head": {"dense_units": [10**12]}}),
    ("dropout", {"head": {"dropout": -0.5}}),
    ("seed", {"seed": 2**70}),
    ("seed", {"seed": -1}),
    ("rotation", {"augmentation": {"rotation": 1e9}}),
    ("rotation", {"augmentation": {"rotation": -0.1}}),
    ("zoom", {"augmentation": {"zoom": 5.0}}),
    ("contrast", {"augmentation": {"contrast": 3.0}}),
    ("image_size", {"image_size": 0}),
    ("image_size", {"image_size": 10**6}),
    ("batch_size", {"batch_size": 2**40}),
    ("epochs", {"epochs": 10**9}),
    ("fine_tune_epochs", {"fine_tune_epochs": 10**9}),
    ("fine_tune_blocks", {"fine_tune_blocks": -3}),
    ("fine_tune_lr_decay", {"fine_tune_lr_decay": 0.0}),
    ("fine_tune_lr_decay", {"fine_tune_lr_decay": 7.5}),
    ("fine_tune_lr_factor", {"fine_tune_lr_factor": 1e30}),
    ("learning_rate", {"learning_rate": 1e30}),
    ("early_stopping_patience", {"early_stopping_patience": 10**9}),
    ("preprocessing", {"preprocessing": "rot13"}),
    ("value", {"freeze": {"preset": "top", "value": 1e300}}),
    ("value", {"freeze": {"preset": "top", "value": 2.5}}),
    ("frozen_layers", {"freeze": {"preset": "custom", "frozen_layers": [["a"]]}}),
    ("frozen_layers", {"freeze": {"preset": "custom", "frozen_layers": [1]}}),
    ("backbone", {"backbone": "x.keras\nsecond line"}),
]


def test_out_of_range_project_fields_are_refused_before_a_run_folder(tmp_path):
    for i, (field, settings) in enumerate(OUT_OF_RANGE):
        project = project_file(tmp_path, f"p{i}", {"backbone": "x.keras"} | settings)
        done = tlstudio("train", "--project", str(project))
        assert_refused(done, field)
        assert not (tmp_path / f"p{i}-runs").exists(), field


BAD_BLOCK_LR = [
    [["block_1", -1.0]],
    [["block_1", 0]],
    [["block_1", 1e999]],  # json.dumps writes Infinity, which Python's reader takes
    [["block_1", float("nan")]],
    [["block_1", "fast"]],
    [["block_1", True]],
    [[5, 0.5]],
    [["", 0.5]],
    ["ab"],
    [["block_1", 0.5, 2.0]],
    [["block_1", 0.5], ["block_1", 0.7]],
    [7],
]


def test_a_malformed_block_lr_is_refused(tmp_path):
    for i, block_lr in enumerate(BAD_BLOCK_LR):
        project = project_file(tmp_path, f"b{i}", {"backbone": "x.keras", "freeze": {"block_lr": block_lr}})
        done = tlstudio("train", "--project", str(project))
        assert_refused(done, "block_lr")
        assert not (tmp_path / f"b{i}-runs").exists(), block_lr


def test_a_deeply_nested_or_huge_project_file_gets_one_line(tmp_path):
    deep = tmp_path / "deep.tlstudio.json"
    deep.write_text('{"format": 1, "settings": ' + "[" * 10_000 + "]" * 10_000 + "}")
    assert_refused(tlstudio("train", "--project", str(deep)), str(deep), "nested")
    runs = tmp_path / "runs.tlstudio.json"
    runs.write_text('{"format": 1, "runs": [{"run_dir": "x", "metrics": ' + "[" * 5000 + "]" * 5000 + "}]}")
    assert_refused(tlstudio("train", "--project", str(runs)), "nested")
    shallow = tmp_path / "shallow.tlstudio.json"  # nested below Python's limit: a long value, one short line
    shallow.write_text('{"format": 1, "settings": {"backbone": "x", "head": ' + "[" * 900 + "]" * 900 + "}}")
    assert_refused(tlstudio("train", "--project", str(shallow)), "head")
    huge = tmp_path / "huge.tlstudio.json"
    with open(huge, "wb") as f:  # sparse: no disk used, and never read
        f.truncate(3 * 1024**3)
    started = time.monotonic()
    assert_refused(tlstudio("train", "--project", str(huge)), str(huge), "MB")
    assert time.monotonic() - started < 60


def test_impossible_image_sizes_are_refused_up_front(tmp_path, tiny_backbone_file):
    data = tmp_path / "data"
    data.mkdir()
    for size in ("0", "-5", "1000000"):
        out = tmp_path / f"out{size}"
        done = tlstudio(
            "train", str(data), "--backbone", str(tiny_backbone_file), "--out", str(out), "--image-size", size
        )
        assert_refused(done, "image", size)
        assert not out.exists()
    out = tmp_path / "fixed"  # the file's input is fixed at 32 px
    done = tlstudio(
        "train", str(data), "--backbone", str(tiny_backbone_file), "--out", str(out), "--image-size", "64"
    )
    assert_refused(done, "32", "64")
    assert not out.exists()
    out = tmp_path / "small"
    done = tlstudio(
        "train", str(data), "--backbone", "MobileNetV3Small", "--out", str(out), "--image-size", "16"
    )
    assert_refused(done, "MobileNetV3Small", "32", "16")
    assert not out.exists()
    from tlstudio.core.project import Project
    from tlstudio.core.settings import TrainSettings

    project = Project(
        data_dir=str(make_colour_dataset(tmp_path / "colours", per_class=3)),
        settings=TrainSettings(backbone=str(tiny_backbone_file), image_size=64),
    ).save(tmp_path / "p.tlstudio.json")
    done = tlstudio("train", "--project", str(project))  # the same from a project file
    assert_refused(done, "32", "64")
    assert Project.load(project).runs == [] and not (tmp_path / "p-runs").exists()


def zip_bomb(path: Path, inflated: int) -> Path:
    """A .keras file whose weights member is ``inflated`` bytes of zeros, deflated to a few hundred KB."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"name": "bomb"}}))
        chunk = bytes(1 << 20)
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            for _ in range(inflated >> 20):
                member.write(chunk)
    return path


def test_a_keras_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    bomb = zip_bomb(tmp_path / "bomb.keras", 128 << 20)
    assert bomb.stat().st_size < 2 << 20
    data = make_colour_dataset(tmp_path / "data", per_class=6, seed=5)
    out = tmp_path / "out"
    done = tlstudio("train", str(data), "--backbone", str(bomb), "--out", str(out))
    said = done.stderr.strip().splitlines()
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert [line for line in said if "model.weights.h5" in line and "zip bomb" in line], done.stderr[-2000:]
    from tlstudio.core.backbone.sources import model_file_problem

    started = time.monotonic()
    why = model_file_problem(bomb)
    assert why and "zip bomb" in why and "\n" not in why
    assert time.monotonic() - started < 1.0  # the declared sizes are read, nothing is inflated


def test_resume_of_a_run_whose_settings_are_nested_too_deeply_says_so_in_one_line(tmp_path):
    import json as _json

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(_json.dumps({"status": "failed", "data_dir": str(tmp_path)}))
    (run / "settings.json").write_text("[" * 20_000 + "]" * 20_000)
    (run / "manifest.csv").write_text("path,sha256,class,split\n")
    done = subprocess.run(
        [sys.executable, "-m", "tlstudio", "train", "--resume", str(run)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "nested too deeply" in done.stderr and "Traceback" not in done.stderr
