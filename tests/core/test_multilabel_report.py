"""The HTML report of a multi-label evaluation: scores, a row per label, the curves and calibration per
label (the threshold's point where the label's precision and recall are), the images most wrong."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from factory import make_multilabel_csv

from tlstudio.core.data.labels_csv import read_labels_csv
from tlstudio.core.data.pipeline import multi_hot
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.multilabel_evaluation import summarize_multilabel
from tlstudio.core.results.multilabel_report import (
    OPERATING_POINT,
    calibration_figure,
    pr_curves_figure,
    write_multilabel_report,
)


@pytest.fixture
def evaluation(tmp_path):
    csv = make_multilabel_csv(tmp_path / "data", n=24)
    table = read_labels_csv(csv)
    targets = multi_hot([s for _, s in table.rows], table.labels)
    probs = targets * 0.35 + np.random.default_rng(0).random(targets.shape) * 0.65
    paths = [r for r, _ in table.rows]
    return csv.parent, summarize_multilabel(
        table.labels, [0.5, 0.6, 0.4, 0.5], targets, probs, paths, resamples=50
    )


def test_the_report_holds_scores_labels_curves_calibration_and_errors(tmp_path, evaluation):
    data, result = evaluation
    run = tmp_path / "run"
    run.mkdir()
    (run / files.HISTORY).write_text(json.dumps({"epochs": [{"epoch": 1, "loss": 0.7, "val_loss": 0.8}]}))
    out = write_multilabel_report(tmp_path / "report.html", result, data, title="A <ml> run", run_dir=run)
    text = out.read_text(encoding="utf-8")
    for heading in ("Summary", "Learning curves", "Per label", "Precision–recall curves", "Calibration"):
        assert f"<h2>{heading}</h2>" in text, heading
    assert "<h2>Most wrong images</h2>" in text and "A &lt;ml&gt; run" in text
    m = result.metrics
    assert f"<td>{m['macro_map']:.4f}</td>" in text and f"<td>{m['macro_ece']:.4f}</td>" in text
    low, high = m["intervals"]["macro_map"]
    assert f"{low:.3f}–{high:.3f}" in text
    for name, row in m["per_label"].items():  # a row per label: threshold, AP, …, ECE
        assert f"<td>{name}</td><td>{row['threshold']:.4f}</td><td>{row['ap']:.4f}</td>" in text
        assert f"<td>{row['ece']:.4f}</td></tr>" in text
    wrong = result.errors()
    assert wrong and wrong[0]["path"] in text  # the most wrong image, with its thumbnail
    assert len(re.findall(r"src='data:image/png;base64,", text)) >= 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_each_label_has_its_curve_with_the_threshold_marked_and_its_reliability(evaluation):
    _, result = evaluation
    m, labels = result.metrics, result.labels
    pr = pr_curves_figure(labels, m["pr_curves"], m["per_label"])
    for ax, name in zip(pr.axes, labels, strict=True):
        curve, marker = ax.get_lines()
        assert list(curve.get_xdata()) == m["pr_curves"][name]["recall"]
        assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (
            m["per_label"][name]["recall"],
            m["per_label"][name]["precision"],
        )
        assert marker.get_color() == OPERATING_POINT and name in ax.get_title()
    cal = calibration_figure(labels, m["calibration"])
    for ax, name in zip(cal.axes, labels, strict=True):
        filled = [b for b in m["calibration"][name]["bins"] if b["count"]]
        assert list(ax.get_lines()[1].get_xdata()) == [b["mean_probability"] for b in filled]
        assert f"ECE {m['calibration'][name]['ece']:.3f}" in ax.get_title()
    none = pr_curves_figure(["x"], {"x": None}, {"x": {"ap": None, "threshold": 0.5}})
    assert not none.axes[0].get_lines() and "no positive image" in none.axes[0].texts[0].get_text()
