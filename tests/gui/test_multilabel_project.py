"""A multi-label project in the app: the Data panel on a labels CSV, the Evaluate panel on its run."""

from __future__ import annotations

import json

import numpy as np
from factory import make_multilabel_csv

from tlstudio.core.data.labels_csv import read_labels_csv
from tlstudio.core.data.pipeline import multi_hot
from tlstudio.core.results.multilabel_evaluation import summarize_multilabel
from tlstudio.core.results.run_history import load_run
from tlstudio.gui.data_panel import DataPanel
from tlstudio.gui.evaluate_panel import EvaluatePanel


def test_the_data_panel_shows_labels_counts_and_cooccurrence(qtbot, tmp_path):
    csv = make_multilabel_csv(tmp_path / "data", n=24)
    panel = DataPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.report_ready, timeout=30_000):
        panel.load(str(csv))
    table = read_labels_csv(csv)
    assert panel.state.report.task == "multi_label" and panel.state.project.data_dir == str(csv)
    assert panel.classes.horizontalHeaderItem(0).text() == "Label"
    assert panel.thumbs_title.text() == "Thumbnails of the selected label"
    shown = {panel.classes.item(r, 0).text(): int(panel.classes.item(r, 1).text()) for r in range(4)}
    assert shown == table.counts()
    weights = {panel.classes.item(r, 0).text(): panel.classes.item(r, 2).text() for r in range(4)}
    assert not panel.classes.isColumnHidden(2)  # each label's positive weight, were it balanced
    assert weights == {k: f"{(24 - n) / n:.2f}" for k, n in table.counts().items()}
    assert panel.multi_label.isVisible() or not panel.isVisible()
    text = panel.multi_label.text()
    none = sum(1 for _, labels in table.rows if not labels)
    assert f"{none} images with none" in text and "together most often" in text
    assert panel.tabs.isTabEnabled(3) and panel.tabs.isTabEnabled(4)  # label check, Label next
    assert str(csv) in panel.folder_label.text() and "4 labels" in panel.folder_label.text()
    panel.classes.selectRow(shown.__len__() - 1)  # "yellow": its thumbnails are images carrying it
    yellow = {r for r, labels in table.rows if "yellow" in labels}
    tips = {panel.thumbs.item(i).toolTip() for i in range(panel.thumbs.count())}
    assert tips and tips <= yellow


def test_the_data_panel_says_why_a_bad_csv_cannot_be_used(qtbot, tmp_path):
    (tmp_path / "labels.csv").write_text("file,tags\n")
    panel = DataPanel()
    qtbot.addWidget(panel)
    panel.load(str(tmp_path / "labels.csv"))
    qtbot.waitUntil(lambda: "could not be scanned" in panel.folder_label.text(), timeout=30_000)
    assert "header path,labels" in panel.folder_label.text()


def test_the_evaluate_panel_shows_a_multilabel_run(qtbot, tmp_path):
    csv = make_multilabel_csv(tmp_path / "data", n=24)
    table = read_labels_csv(csv)
    labels = table.labels
    targets = multi_hot([s for _, s in table.rows], labels)
    rng = np.random.default_rng(0)
    probs = np.clip(targets * 0.7 + rng.random(targets.shape) * 0.4, 0, 1)
    evaluation = summarize_multilabel(
        labels, [0.5] * 4, targets, probs, [r for r, _ in table.rows], resamples=50
    )
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation.to_dict(with_predictions=True)))
    m = evaluation.metrics
    metrics = {"test_macro_map": m["macro_map"], "test_macro_f1": m["macro"]["f1"]}
    (run_dir / "run.json").write_text(
        json.dumps({"status": "completed", "task": "multi_label", "metrics": metrics})
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "settings.json").write_text(json.dumps({"backbone": "x.keras", "weights": "imagenet"}))
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir)], str(csv), None)
    panel.show_evaluation(run_dir)
    text = panel.summary.toPlainText()
    assert f"Test macro mAP {m['macro_map']:.3f}" in text and "Hamming loss" in text
    assert all(name in text for name in labels)
    assert panel.confusion.rowCount() == 0  # no confusion matrix for multi-label
    assert panel.runs.item(0, 4).text() == f"mAP {m['macro_map']:.3f}"
