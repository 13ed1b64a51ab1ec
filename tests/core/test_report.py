"""The HTML report: every section, the errors with their images, and nothing written when it fails."""

from __future__ import annotations

import json
import re

import numpy as np
from factory import make_colour_dataset

from tlstudio.core.results import run_folder as files
from tlstudio.core.results.evaluation import summarize_predictions
from tlstudio.core.results.report import write_report
from tlstudio.core.settings import defaults


def test_the_report_holds_summary_classes_matrix_calibration_errors_and_the_runs_curves(tmp_path):
    data = make_colour_dataset(tmp_path / "data", per_class=4)
    labels = ["blue", "green", "red"]
    paths = [f"{label}/{label}_{i:03d}.png" for label in labels for i in range(4)]
    y_true = np.repeat(np.arange(3), 4)
    probs = np.full((12, 3), 0.05)
    probs[np.arange(12), y_true] = 0.9
    probs[0] = [0.05, 0.9, 0.05]  # one confident error: blue taken for green
    evaluation = summarize_predictions(labels, y_true, probs, paths)
    run = tmp_path / "run"
    run.mkdir()
    (run / files.HISTORY).write_text(json.dumps({"epochs": [{"epoch": 1, "loss": 1.0, "val_loss": 1.1}]}))
    (run / files.SETTINGS).write_text(json.dumps(defaults().but(backbone="b").to_dict()))
    out = write_report(tmp_path / "report.html", evaluation, data, title="A <test> run", run_dir=run)
    text = out.read_text(encoding="utf-8")
    for heading in ("Summary", "Learning curves", "Settings", "Per class", "Confusion matrix", "Calibration"):
        assert f"<h2>{heading}</h2>" in text, heading
    assert "A &lt;test&gt; run" in text  # escaped
    ci = evaluation.metrics["intervals"]
    assert evaluation.metrics["balanced_accuracy"] == np.mean([3 / 4, 1, 1])  # recall per class
    assert f"<td>balanced accuracy, 95% interval (bootstrap)</td><td>{ci['balanced_accuracy'][0]:.3f}" in text
    assert "<td>macro F1, 95% interval (bootstrap)</td>" in text
    assert "blue/blue_000.png" in text  # the confident error is shown
    assert len(re.findall(r"src='data:image/png;base64,", text)) >= 4  # curves, matrix, calibration, error
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
