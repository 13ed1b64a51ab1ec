"""The Evaluate panel's comparison of two runs: intervals, the verdict, the app's setting names, and
run names shown as text (never as HTML)."""

from __future__ import annotations

import json

import numpy as np

from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import classification_metrics
from tlstudio.core.results.run_history import load_run
from tlstudio.core.settings import defaults
from tlstudio.gui.evaluate_panel import EvaluatePanel


def write_run(folder, right: list[bool], **settings):
    folder.mkdir(parents=True)
    s = defaults().but(**({"backbone": "b"} | settings))
    (folder / files.SETTINGS).write_text(json.dumps(s.to_dict()))
    (folder / files.RUN_JSON).write_text(json.dumps({"status": "completed", "manifest_fingerprint": "abc"}))
    metrics = {"test_accuracy": sum(right) / len(right), "test_images": len(right), "best_epoch": 0}
    (folder / files.METRICS).write_text(json.dumps(metrics))
    records = [
        {"path": f"x/{i}.png", "true": "x", "predicted": "x" if ok else "y", "confidence": 0.9, "p_true": 0.9}
        for i, ok in enumerate(right)
    ]
    y = np.zeros(len(right), dtype=int)
    probs = np.array([[0.9, 0.1] if ok else [0.1, 0.9] for ok in right])
    evaluation = classification_metrics(y, probs, ["x", "y"]) | {
        "labels": ["x", "y"],
        "num_images": len(right),
    }
    evaluation |= {"skipped": [], "predictions": records}
    (folder / files.EVALUATION).write_text(json.dumps(evaluation))
    return folder


def test_comparing_two_runs_shows_intervals_a_verdict_and_labels(qtbot, tmp_path):
    transfer = write_run(tmp_path / "transfer <v2>", [True] * 13 + [False] * 6)
    baseline = write_run(tmp_path / "baseline", [True] * 11 + [False] * 8, weights="none", epochs=9)
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(transfer), load_run(baseline)], None, None)
    panel.runs.selectAll()
    panel.compare_button.click()
    text = panel.summary.toPlainText()
    assert "transfer <v2> vs baseline" in text  # a name with < > shown as it is
    assert "tie: transfer <v2> and baseline cannot be told apart" in text and "McNemar" in text
    assert "95% interval" in text and "0.46–0.85" in text and "0.36–0.77" in text
    assert "Head epochs" in text and "Weights" in text and "\nepochs\n" not in text
    assert "best epoch (from 1)" in text
