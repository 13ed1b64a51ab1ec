"""A project's runs read back from their folders, diffed and compared."""

from __future__ import annotations

import json
import os

from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_history import compare_runs, diff_settings, load_run, project_runs, read_json
from tlstudio.core.settings import defaults


def write_run(folder, status="completed", **settings):
    folder.mkdir(parents=True)
    s = defaults().but(backbone="b", **settings)
    (folder / files.SETTINGS).write_text(json.dumps(s.to_dict()))
    info = {"status": status, "started": "2026-11-23T10:00", "seconds": 12.5, "manifest_fingerprint": "abc"}
    if status == "running":
        info["pid"] = 2**22 + 12345  # no such process
    (folder / files.RUN_JSON).write_text(json.dumps(info))
    (folder / files.METRICS).write_text(json.dumps({"test_accuracy": 0.9 if status == "completed" else 0.5}))
    return folder


def test_a_run_reads_back_with_its_settings_and_metrics(tmp_path):
    record = load_run(write_run(tmp_path / "run-1", epochs=7))
    assert (record.name, record.status, record.backbone, record.seconds) == ("run-1", "completed", "b", 12.5)
    assert record.metrics == {"test_accuracy": 0.9}
    assert record.train_settings() == defaults().but(backbone="b", epochs=7)


def test_a_run_whose_process_died_reads_as_interrupted(tmp_path):
    record = load_run(write_run(tmp_path / "run-2", status="running"))
    assert record.status == "interrupted"


def test_compare_shows_differing_settings_and_every_metric(tmp_path):
    a = load_run(write_run(tmp_path / "a", epochs=7))
    b = load_run(write_run(tmp_path / "b", epochs=9, head=defaults().head.__class__(dropout=0.5)))
    result = compare_runs(a, b)
    assert result["same_data"] is True
    diffs = {d["setting"]: (d["a"], d["b"]) for d in result["settings_diff"]}
    assert diffs == {"epochs": (7, 9), "head.dropout": (0.2, 0.5)}
    assert result["metrics"] == [{"metric": "test_accuracy", "a": 0.9, "b": 0.9}]
    assert diff_settings({"x": {"y": 1}}, {"x": {"y": 1}, "z": 2}) == [("z", None, 2)]
    (tmp_path / "b" / "run.json").write_text('{"status": "compl')  # truncated: its data cannot be told
    assert compare_runs(a, load_run(tmp_path / "b"))["same_data"] is None  # not "NO"


def test_missing_or_broken_files_read_as_empty_and_gone_runs_are_skipped(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert read_json(broken) == {} and read_json(tmp_path / "absent.json") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_json(tmp_path / "list.json") == {}
    kept = write_run(tmp_path / "kept")
    runs = project_runs([{"run_dir": str(kept)}, {"run_dir": os.fspath(tmp_path / "deleted")}])
    assert [r.name for r in runs] == ["kept"]


def test_the_weights_column_says_what_a_run_started_from():
    from tlstudio.core.results.run_history import describe_weights

    assert describe_weights({"backbone": "MobileNetV3Small", "weights": "imagenet"}) == "imagenet"
    assert describe_weights({"backbone": "/m/demo.keras", "weights": "imagenet"}) == "the model's own"
    assert describe_weights({"backbone": "/m/demo.keras", "weights": "none"}) == "none (from scratch)"
    assert describe_weights({"backbone": "ResNet50", "weights": "/w/mine.weights.h5"}) == "mine.weights.h5"
    preset = "kerashub:dinov2_small"
    assert describe_weights({"backbone": preset, "weights": "imagenet"}) == "the preset's own"
    assert describe_weights({"backbone": preset, "weights": "none"}) == "none (from scratch)"
