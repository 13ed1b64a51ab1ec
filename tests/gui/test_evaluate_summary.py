"""The Evaluate panel's summary of a run: balanced accuracy and macro F1 beside accuracy, with intervals."""

from __future__ import annotations

import numpy as np

from tlstudio.core.results.evaluation import summarize_predictions
from tlstudio.gui.evaluate_models import summary_html


def test_the_summary_shows_balanced_accuracy_and_macro_f1_with_their_intervals():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 0, 0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    evaluation = summarize_predictions(["a", "b", "c"], y_true, probs, [f"{i}.png" for i in range(8)])
    e = evaluation.to_dict()
    ci = e["intervals"]
    html = summary_html(e)
    assert (
        f"balanced accuracy {np.mean([3 / 4, 1, 1 / 2]):.3f} (95% {ci['balanced_accuracy'][0]:.2f}–" in html
    )
    assert f"macro F1 {e['macro_f1']:.3f} (95% {ci['macro_f1'][0]:.2f}–{ci['macro_f1'][1]:.2f})" in html
    older = {k: v for k, v in e.items() if k not in ("intervals", "balanced_accuracy")}  # before they existed
    assert "balanced accuracy" not in summary_html(older)
