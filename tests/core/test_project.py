"""Project files: round trip, atomic writes, refusing other files; `train --project`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.project import Project
from tlstudio.core.settings import Augmentation, TrainSettings


def test_round_trip_keeps_every_setting(tmp_path):
    settings = TrainSettings(
        backbone="EfficientNetB0",
        weights="none",
        image_size=64,
        epochs=3,
        freeze=FreezePlan("custom", frozen_layers=frozenset({"a", "b"}), block_lr=(("x", 0.1),)),
        augmentation=Augmentation(flip=False, zoom=0.1),
    )
    project = Project(data_dir="/data", settings=settings, runs=[{"run_dir": "r", "status": "completed"}])
    path = project.save(tmp_path / "p.tlstudio.json")
    again = Project.load(path)
    assert again.settings == settings and again.data_dir == "/data" and again.runs == project.runs
    assert again.name == "p" and again.manifest_path.name == "p.tlstudio.manifest.csv"
    assert [p.name for p in tmp_path.iterdir()] == ["p.tlstudio.json"]  # no temporary file left


def test_other_files_are_refused(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a TL Studio project"):
        Project.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{broken")
    with pytest.raises(ValueError, match="cannot read project"):
        Project.load(tmp_path / "y.json")


def test_new_run_dirs_are_unique(tmp_path):
    project = Project(path=tmp_path / "p.tlstudio.json")
    first = project.new_run_dir()
    first.mkdir(parents=True)
    assert project.new_run_dir() != first
    assert first.parent == tmp_path / "p-runs"


@pytest.mark.slow
def test_cli_trains_a_project_and_records_the_run(tmp_path, colour_data, tiny_backbone_file, capsys):
    from tlstudio.cli import main

    settings = TrainSettings(backbone=str(tiny_backbone_file), epochs=1, fine_tune_epochs=0, batch_size=8)
    path = Project(data_dir=str(colour_data), settings=settings).save(tmp_path / "p.tlstudio.json")
    assert main(["train", "--project", str(path)]) == 0
    project = Project.load(path)
    assert project.runs[-1]["status"] == "completed"
    run_dir = project.runs[-1]["run_dir"]
    assert run_dir.startswith(str(tmp_path / "p-runs" / "run-"))


def test_a_run_is_recorded_by_its_absolute_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = Project(data_dir="data")
    project.record_run(Path("runs/r1"), "completed", {})
    assert project.runs[-1]["run_dir"] == str(tmp_path / "runs" / "r1")  # found from any folder later
    project.record_run(tmp_path / "runs" / "r1", "stopped", {})  # the same run again: replaced
    assert len(project.runs) == 1 and project.runs[0]["status"] == "stopped"
