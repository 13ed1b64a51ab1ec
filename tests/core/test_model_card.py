"""The model card: written beside the run's SavedModel and with every export set, its figures the run's own,
its text escaped, and a cancelled set leaving the previous card."""

from __future__ import annotations

import dataclasses
import json
import re
import threading

from test_export_set import fake_exports, old_export

from tlstudio.core.data.split import Manifest, ManifestEntry
from tlstudio.core.deploy import export_set
from tlstudio.core.deploy.formats import ALL, Verification, artefact_name
from tlstudio.core.deploy.model_card import (
    EXPORT_SUMMARY,
    RUN_CARD,
    SET_CARD,
    card_path,
    escape,
    model_card,
    write_run_card,
)
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import wilson_interval

SECTIONS = ("## Data", "## Backbone and recipe", "## Test results", "## Calibration", "## Exports")
SECTIONS += ("## Known limits",)


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def cells(line: str) -> list[str]:
    """A table row's cells, split on the pipes Markdown reads as cell borders (not ``\\|``)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def tables_are_whole(text: str) -> None:
    """Every row of every table has as many cells as its header."""
    width = None
    for line in text.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        if width is None:
            width = len(cells(line))
        assert len(cells(line)) == width, line


def test_the_run_card_is_written_with_every_section_and_the_runs_own_figures(probe_run):
    text = (probe_run / RUN_CARD).read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in text
    tables_are_whole(text)
    metrics, info = read(probe_run / files.METRICS), read(probe_run / files.RUN_JSON)
    evaluation, settings = read(probe_run / files.EVALUATION), read(probe_run / files.SETTINGS)
    n = metrics["test_images"]
    low, high = metrics["test_accuracy_low"], metrics["test_accuracy_high"]
    assert (low, high) == wilson_interval(round(metrics["test_accuracy"] * n), n)
    assert f"Accuracy: {metrics['test_accuracy']:.3f} (95% interval {low:.3f}–{high:.3f}, {n} images)" in text
    assert f"Macro F1: {metrics['test_macro_f1']:.3f}" in text
    assert f"test ECE {metrics['test_ece']:.3f}" in text and "Not calibrated" in text
    rows = {cells(line)[0]: cells(line) for line in text.splitlines() if line.startswith("| ")}
    for name, scores in evaluation["per_class"].items():
        row = rows[escape(name)]
        assert row[1].startswith(f"{scores['precision']:.3f}") and row[3] == f"{scores['f1']:.3f}"
        r_low, r_high = wilson_interval(round(scores["recall"] * scores["support"]), scores["support"])
        assert row[2] == f"{scores['recall']:.3f} ({r_low:.2f}–{r_high:.2f})"
        assert row[4] == str(scores["support"])
    manifest = Manifest.load(probe_run / files.MANIFEST)
    counts = manifest.counts()
    for name in manifest.classes:  # the Data table comes first
        data_row = next(cells(line) for line in text.splitlines() if line.startswith(f"| {escape(name)} |"))
        assert [int(c) for c in data_row[1:]] == [
            counts["train"].get(name, 0),
            counts["val"].get(name, 0),
            counts["test"].get(name, 0),
            sum(e.label == name for e in manifest.entries),
        ]
    assert info["manifest_fingerprint"] == manifest.fingerprint() and manifest.fingerprint() in text
    assert escape(info["data_dir"]) in text and f"seed {settings['seed']}" in text
    assert escape(settings["backbone"]) in text and "backbone frozen" in text
    assert f"Best epoch (counted from 1): {metrics['best_epoch'] + 1}" in text
    assert f"{info['image_size']} px" in text
    assert "| probe | 1 | none: a linear probe fitted directly" in text


def run_with_awkward_class_names(run):
    """A finished run's records, by hand: class names Markdown would act on, a confusion, a class
    missing from validation, skipped files, a small calibrated test split."""
    names = ["a|b", "*star*", "plain_name"]
    entries = [
        ManifestEntry(f"{i}/{k}.png", f"{i}{k}", name, "train")
        for i, name in enumerate(names)
        for k in range(6)
    ]
    entries += [
        ManifestEntry(f"{i}/t{k}.png", f"t{i}{k}", name, "test")
        for i, name in enumerate(names)
        for k in range(4)
    ]
    entries += [ManifestEntry(f"{i}/v.png", f"v{i}", name, "val") for i, name in enumerate(names) if i]
    run.mkdir()
    manifest = Manifest(tuple(entries))
    manifest.save(run / files.MANIFEST)
    cm = [[1, 3, 0], [0, 4, 0], [0, 1, 3]]
    per_class = {
        "a|b": {"precision": 1.0, "recall": 0.25, "f1": 0.4, "support": 4},
        "*star*": {"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 4},
        "plain_name": {"precision": 1.0, "recall": 0.75, "f1": 0.857, "support": 4},
    }
    (run / files.EVALUATION).write_text(
        json.dumps({"labels": names, "confusion_matrix": cm, "per_class": per_class, "num_images": 12})
    )
    low, high = wilson_interval(8, 12)
    metrics = {
        "test_images": 12,
        "test_accuracy": 8 / 12,
        "test_accuracy_low": low,
        "test_accuracy_high": high,
        "test_macro_f1": 0.641,
        "test_ece": 0.12,
        "temperature": 1.7,
        "val_ece_before_calibration": 0.2,
        "val_ece_calibrated": 0.05,
        "best_epoch": 3,
        "wise_alpha": 0.5,
    }
    (run / files.METRICS).write_text(json.dumps(metrics))
    skipped = [{"path": "a|b/broken_*.png", "reason": "not an image"}]
    info = {"status": "completed", "data_dir": "/data/[x]", "skipped_at_split": skipped, "image_size": 8}
    (run / files.RUN_JSON).write_text(json.dumps(info | {"manifest_fingerprint": manifest.fingerprint()}))
    (run / files.SETTINGS).write_text(
        json.dumps(
            {
                "backbone": "my_net.keras",
                "seed": 7,
                "val_fraction": 0.1,
                "test_fraction": 0.2,
                "calibrate": True,
            }
        )
    )
    epochs = [{"phase": "probe", "learning_rate": 0.0, "probe_l2": 1e-4}]
    epochs += [{"phase": "fine-tune", "learning_rate": lr} for lr in (1e-5, 1e-4, 5e-5)]
    (run / files.HISTORY).write_text(json.dumps({"epochs": epochs}))
    return run


def test_class_names_and_paths_are_escaped_and_every_limit_is_named(tmp_path):
    text = model_card(run_with_awkward_class_names(tmp_path / "run"))
    tables_are_whole(text)
    assert "| a\\|b | 6 | 0 | 4 | 10 |" in text and "| \\*star\\* | 6 | 1 | 4 | 11 |" in text
    assert "plain\\_name" in text and "*star*" not in text.replace("\\*star\\*", "")
    assert "/data/\\[x\\]" in text and "my\\_net.keras" in text
    assert "Temperature scaling" in text and "0.200 before, 0.050 after" in text
    assert "WiSE-FT: α = 0.5" in text and "Best epoch (counted from 1): 4" in text
    assert "| fine-tune | 3 | 1e-05 → 5e-05 |" in text
    limits = text.split("## Known limits")[1]
    width = round((wilson_interval(8, 12)[1] - wilson_interval(8, 12)[0]) * 100)
    assert f"Small test split: 12 images; the 95% interval for accuracy is {width} points wide" in limits
    assert "3 of 4 test images of a\\|b were predicted as \\*star\\*" in limits
    assert limits.index("3 of 4") < limits.index("1 of 4 test images of plain\\_name")  # largest first
    assert "No validation image of: a\\|b." in limits
    assert "1 file(s) skipped" in limits and "a\\|b/broken\\_\\*.png (not an image)" in limits


def test_a_folder_with_no_records_still_has_a_card(tmp_path):
    text = model_card(tmp_path)
    for section in SECTIONS:
        assert section in text
    assert "No test split" in text and "No export set yet" in text and card_path(tmp_path) is None


def test_the_card_lands_with_the_export_set_and_a_cancelled_set_leaves_the_previous_one(
    tmp_path, monkeypatch
):
    assert EXPORT_SUMMARY == export_set.SUMMARY
    (tmp_path / files.MODEL).write_bytes(b"stand-in")
    folder = old_export(tmp_path)
    (folder / SET_CARD).write_text("the old card")
    failing = artefact_name(*ALL[1])
    fake_exports(monkeypatch, fail=failing)
    results = export_set.export_all(tmp_path)
    card = (folder / SET_CARD).read_text(encoding="utf-8")
    assert card_path(tmp_path) == folder / SET_CARD and card == model_card(tmp_path)
    rows = {
        cells(line)[0]: cells(line)
        for line in card.split("## Exports")[1].splitlines()
        if line.startswith("| ")
    }
    assert [escape(r.name) for r in results] == [n for n in rows if n != "format"]
    assert rows[escape(failing)][1] == "previous" and rows[escape(failing)][2] == "99.0%"
    assert {rows[escape(r.name)][1] for r in results if r.name not in (failing, "coreml")} == {"new"}
    assert rows["coreml"][1].startswith("skipped: coreml: ")  # the reason it is not made
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    fake_exports(monkeypatch, cancel_after=2)
    export_set.export_all(tmp_path, stop=threading.Event())
    assert (folder / SET_CARD).read_text(encoding="utf-8") == card  # the set and its card, as they were


def test_export_all_says_where_the_card_is(tmp_path, monkeypatch, capsys):
    from tlstudio.cli import main

    run = run_with_awkward_class_names(tmp_path / "run")
    (run / files.MODEL).write_bytes(b"stand-in")
    fake_exports(monkeypatch)
    quick = export_set.export_format
    checked = Verification(12, 1.0, 0.75, 0.75, 0.0, 0.0, 1.5, 2.0, 100.0, 2_000_000)
    monkeypatch.setattr(
        export_set, "export_format", lambda *a, **k: dataclasses.replace(quick(*a, **k), verification=checked)
    )
    monkeypatch.setattr("tlstudio.cli.export.quiet_tensorflow", lambda: None)  # nothing here needs TF
    assert main(["export", str(run), "--format", "all"]) == 0
    assert f"Model card: {run / files.EXPORT / SET_CARD}" in capsys.readouterr().out
    card = (run / files.EXPORT / SET_CARD).read_text(encoding="utf-8")
    assert "a\\|b" in card and "| onnx | new | 100.0% | +0.000 | 1.500 | 2.00 MB |" in card


def test_records_edited_by_hand_into_nonsense_still_give_a_card(tmp_path):
    run = run_with_awkward_class_names(tmp_path / "run")
    (run / files.METRICS).write_text(json.dumps({"test_accuracy": "high", "test_images": None}))
    evaluation = json.loads((run / files.EVALUATION).read_text())
    evaluation["per_class"]["a|b"]["recall"] = "most"
    evaluation["confusion_matrix"] = "none"
    (run / files.EVALUATION).write_text(json.dumps(evaluation))
    (run / files.HISTORY).write_text(json.dumps({"epochs": {"phase": "probe"}}))
    text = model_card(run)
    test = text.split("## Test results")[1].split("## Calibration")[0]
    assert "No test split" in test and "a\\|b" not in test
    assert write_run_card(run) == run / RUN_CARD


def test_a_students_cards_are_refreshed_with_its_teacher(tmp_path):
    """``distill`` records the teacher in run.json after the cards were written; ``refresh_cards`` writes
    the run's card and the export set's again with a Distillation section, and other runs have none."""
    from tlstudio.core.deploy.model_card import refresh_cards

    assert "## Distillation" not in model_card(tmp_path)
    record = {
        "status": "completed",
        "distilled_from": "/runs/teacher",
        "distillation": {
            "student": "MobileNetV3Small",
            "student_weights": "none",
            "temperature": 4.0,
            "soft_weight": 0.9,
            "unlabelled": "/photos/more",
        },
        "teacher_comparison": {
            "test_images": 30,
            "agreement": 0.967,
            "agreement_interval": [0.833, 0.994],
            "latency_ratio": 0.18,
            "size_ratio": 0.31,
        },
    }
    (tmp_path / files.RUN_JSON).write_text(json.dumps(record))
    (tmp_path / files.EXPORT).mkdir()
    (tmp_path / files.EXPORT / SET_CARD).write_text("the card written with the export set")
    refresh_cards(tmp_path)
    for card in (tmp_path / RUN_CARD, tmp_path / files.EXPORT / SET_CARD):
        text = card.read_text()
        assert "## Distillation" in text and "`/runs/teacher`" in text, card
        assert "MobileNetV3Small" in text and "0.967 (0.833–0.994)" in text and "latency × 0.180" in text
        assert "unlabelled images in `/photos/more`" in text
