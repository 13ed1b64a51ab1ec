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


def write_evaluation(folder, right: list[bool]) -> None:
    records = [
        {"path": f"x/{i}.png", "true": "x", "predicted": "x" if ok else "y", "confidence": 0.9, "p_true": 0.9}
        for i, ok in enumerate(right)
    ]
    (folder / files.EVALUATION).write_text(json.dumps({"accuracy": 0.5, "predictions": records}))


def test_compare_carries_intervals_and_a_paired_verdict(tmp_path):
    a = write_run(tmp_path / "transfer")
    b = write_run(tmp_path / "baseline", weights="none")
    write_evaluation(a, [True] * 13 + [False] * 6)
    write_evaluation(b, [True] * 7 + [False] * 12)
    result = compare_runs(load_run(a), load_run(b))
    low, high = result["accuracy"][0]["low"], result["accuracy"][0]["high"]
    assert result["accuracy"][0]["images"] == 19 and round(low, 2) == 0.46 and round(high, 2) == 0.85
    verdict = result["verdict"]
    assert verdict["outcome"] == "better" and verdict["winner"] == "transfer" and verdict["paired"]
    assert verdict["text"].startswith("transfer better than baseline: p=0.031 (McNemar, 19 paired")
    json.dumps(result)  # JSON-ready for `runs --diff --json`
    write_evaluation(b, [True] * 12 + [False] * 7)
    assert compare_runs(load_run(a), load_run(b))["verdict"]["outcome"] == "tie"


def test_best_epoch_is_stored_from_zero_and_shown_from_one(tmp_path):
    a, b = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    (a / files.METRICS).write_text(json.dumps({"best_epoch": 0, "val_accuracy": 0.9}))
    (b / files.METRICS).write_text(json.dumps({"best_epoch": 4, "val_accuracy": 0.8}))
    rows = {m["metric"]: (m["a"], m["b"]) for m in compare_runs(load_run(a), load_run(b))["metrics"]}
    assert rows["best_epoch"] == (1, 5)  # the first epoch is epoch 1, as the Train panel counts
    assert rows["val_accuracy"] == (0.9, 0.8)
    assert load_run(a).metrics["best_epoch"] == 0  # the files keep Keras' index: old runs read the same


def test_the_settings_diff_names_settings_as_a_person_sees_them(tmp_path):
    a = load_run(write_run(tmp_path / "a", early_stopping_patience=5))
    b = load_run(write_run(tmp_path / "b", early_stopping_patience=9, learning_rate=0.01))
    rows = {d["setting"]: d for d in compare_runs(a, b)["settings_diff"]}
    assert rows["early_stopping_patience"]["label"] == "Early-stopping patience"  # the app's label
    assert rows["early_stopping_patience"]["option"] == "Early-stopping patience (--patience)"
    assert rows["learning_rate"]["option"] == "Learning rate (--learning-rate)"


def test_every_setting_has_a_name_a_person_knows():
    from tlstudio.core.results.run_history import flatten
    from tlstudio.core.settings import SETTING_NAMES, setting_name

    assert set(flatten(defaults().to_dict())) == set(SETTING_NAMES)  # a new setting needs its name
    assert setting_name("head.dropout") == "Head dropout" and setting_name("future_field") == "future_field"


def test_the_comparison_html_escapes_every_name_and_value(tmp_path):
    from tlstudio.core.results.run_history import comparison_html

    a = write_run(tmp_path / "a<b>x & co")  # a folder name is user text
    b = write_run(tmp_path / "plain", cut_at="<i>odd</i>")
    write_evaluation(a, [True] * 5)
    write_evaluation(b, [True] * 4 + [False])
    page = comparison_html(compare_runs(load_run(a), load_run(b)))
    assert "a<b>x" not in page and "a&lt;b&gt;x &amp; co" in page
    assert "<i>odd</i>" not in page and "&lt;i&gt;odd&lt;/i&gt;" in page
    assert (
        "95% interval" in page and "tie: " in page and "Features from layer" in page and "cut_at" not in page
    )
