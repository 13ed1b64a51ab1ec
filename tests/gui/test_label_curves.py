"""The Evaluate panel on a multi-label run: a label chooser over that label's precision–recall curve
(its threshold's point marked in red) and calibration, in place of the confusion matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factory import make_multilabel_csv

from tlstudio.core.data.labels_csv import read_labels_csv
from tlstudio.core.data.pipeline import multi_hot
from tlstudio.core.results.multilabel_evaluation import summarize_multilabel
from tlstudio.core.results.run_history import load_run
from tlstudio.gui.evaluate_panel import EvaluatePanel
from tlstudio.gui.label_curves import OPERATING_POINT

THRESHOLDS = [0.5, 0.55, 0.7, 0.45]


@pytest.fixture
def multilabel_run(tmp_path):
    """A labels CSV and a run folder holding a multi-label evaluation.json of made-up probabilities."""
    csv = make_multilabel_csv(tmp_path / "data", n=24)
    table = read_labels_csv(csv)
    targets = multi_hot([s for _, s in table.rows], table.labels)
    probs = targets * 0.35 + np.random.default_rng(0).random(targets.shape) * 0.65  # overlapping: AP < 1
    evaluation = summarize_multilabel(
        table.labels, THRESHOLDS, targets, probs, [r for r, _ in table.rows], resamples=20
    ).to_dict(with_predictions=True)
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation))
    metrics = {"test_macro_map": evaluation["macro_map"]}
    (run_dir / "run.json").write_text(
        json.dumps({"status": "completed", "task": "multi_label", "metrics": metrics})
    )
    (run_dir / "settings.json").write_text(json.dumps({"backbone": "x.keras", "weights": "imagenet"}))
    return csv, run_dir, evaluation


def _panel(qtbot, csv, run_dir) -> EvaluatePanel:
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.resize(1300, 900)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_runs([load_run(run_dir)], str(csv), None)
    panel.show_evaluation(run_dir)
    return panel


def _pixel_at(curves, x: float, y: float):
    """The colour the shown image has at data point (x, y) of the precision–recall plot."""
    ax = curves.figure.axes[0]
    px, py = ax.transData.transform((x, y))
    image = curves.image.pixmap().toImage()
    return image.pixelColor(round(px), image.height() - round(py))


def test_the_chosen_labels_curve_is_drawn_with_its_threshold_marked(qtbot, multilabel_run):
    csv, run_dir, evaluation = multilabel_run
    panel = _panel(qtbot, csv, run_dir)
    curves = panel.label_curves
    assert curves.isVisible() and panel.matrix.isHidden() and panel.matrix_title.isHidden()
    assert f"macro ECE {evaluation['macro_ece']:.3f}" in panel.summary.toPlainText()
    assert [curves.chooser.itemText(i) for i in range(curves.chooser.count())] == evaluation["labels"]
    for name in ("red", "green"):
        curves.choose(name)
        row, stored = evaluation["per_label"][name], evaluation["pr_curves"][name]
        pr, rel = curves.figure.axes
        line, marker = pr.get_lines()
        assert list(line.get_xdata()) == stored["recall"] and list(line.get_ydata()) == stored["precision"]
        assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (row["recall"], row["precision"])
        assert f"threshold {row['threshold']:.2f}" in pr.get_title()
        filled = [b for b in evaluation["calibration"][name]["bins"] if b["count"]]
        assert list(rel.get_lines()[1].get_ydata()) == [b["fraction_positive"] for b in filled]
        assert f"ECE {row['ece']:.3f}" in rel.get_title()
        shown = _pixel_at(curves, row["recall"], row["precision"])  # the marker is painted where it belongs
        assert shown.name() == OPERATING_POINT, name
    pixmap = curves.image.pixmap()
    assert pixmap.width() >= 300 and abs(pixmap.width() - curves.image.width()) <= 1  # drawn at its size


def test_an_evaluation_stored_without_curves_gets_them_and_a_single_label_run_gets_its_matrix_back(
    qtbot, multilabel_run
):
    csv, run_dir, evaluation = multilabel_run
    old = {k: v for k, v in evaluation.items() if k not in ("pr_curves", "calibration", "macro_ece")}
    (run_dir / "evaluation.json").write_text(json.dumps(old))
    panel = _panel(qtbot, csv, run_dir)
    panel.label_curves.choose("blue")
    line = panel.label_curves.figure.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == pytest.approx(evaluation["pr_curves"]["blue"]["recall"])
    (run_dir / "evaluation.json").unlink()  # no evaluation: the matrix's place is the matrix's again
    panel.show_evaluation(run_dir)
    assert panel.label_curves.isHidden() and panel.label_curves.figure is None
    assert not panel.matrix.isHidden()
