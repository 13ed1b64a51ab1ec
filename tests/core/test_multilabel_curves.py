"""Per-label precision–recall curves and calibration against scikit-learn and a case worked by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve

from tlstudio.core.results.multilabel_curves import calibration, label_curves, pr_curve, with_label_curves
from tlstudio.core.results.multilabel_evaluation import summarize_multilabel
from tlstudio.core.results.multilabel_metrics import multilabel_metrics


def _data(seed: int = 0, n: int = 120, k: int = 4):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, k)) < 0.4).astype(int)
    targets[:, -1] = 0  # a label with no positive: no curve, but a calibration
    probs = 1 / (1 + np.exp(-(2.0 * (targets - 0.5) + rng.normal(0, 1.2, (n, k)))))
    return targets, np.round(probs, 3)


def test_a_short_curve_is_scikit_learns_own():
    targets, probs = _data()
    for j in range(3):
        precision, recall, thresholds = precision_recall_curve(
            targets[:, j], probs[:, j], drop_intermediate=True
        )
        curve = pr_curve(targets[:, j], probs[:, j], max_points=10_000)
        assert curve["precision"] == pytest.approx(precision.tolist())
        assert curve["recall"] == pytest.approx(recall.tolist())
        assert curve["thresholds"] == pytest.approx(thresholds.tolist())
    assert pr_curve(targets[:, 3], probs[:, 3]) is None


def test_a_long_curve_is_thinned_to_its_bound_keeping_its_ends_on_scikit_learns_curve():
    rng = np.random.default_rng(1)
    truth = rng.random(5000) < 0.3
    scores = np.clip(truth * 0.3 + rng.random(5000) * 0.7, 0, 1)
    precision, recall, thresholds = precision_recall_curve(truth, scores, drop_intermediate=True)
    curve = pr_curve(truth, scores, max_points=50)
    assert len(thresholds) > 1000 and len(curve["recall"]) <= 50
    assert len(curve["thresholds"]) == len(curve["recall"]) - 1
    assert curve["thresholds"][0] == thresholds[0] and curve["thresholds"][-1] == thresholds[-1]
    assert (curve["recall"][-1], curve["precision"][-1]) == (0.0, 1.0)
    at = {t: (p, r) for t, p, r in zip(thresholds, precision, recall, strict=False)}
    for t, p, r in zip(curve["thresholds"], curve["precision"], curve["recall"], strict=False):
        assert at[t] == pytest.approx((p, r))  # every kept point is one of scikit-learn's
    assert np.all(np.diff(curve["recall"]) <= 0)


def test_calibration_by_hand():
    # two bins: [0, 0.5] holds 0.1, 0.2, 0.5 (an edge goes to the lower bin), one positive;
    # (0.5, 1] holds 0.7 and 0.9, both positive
    truth = np.array([0, 1, 0, 1, 1])
    probs = np.array([0.1, 0.2, 0.5, 0.7, 0.9])
    got = calibration(truth, probs, bins=2)
    low, high = got["bins"]
    assert (low["count"], high["count"]) == (3, 2)
    assert low["mean_probability"] == pytest.approx(0.8 / 3) and low["fraction_positive"] == pytest.approx(
        1 / 3
    )
    assert high["mean_probability"] == pytest.approx(0.8) and high["fraction_positive"] == 1.0
    assert got["ece"] == pytest.approx(3 / 5 * abs(1 / 3 - 0.8 / 3) + 2 / 5 * 0.2)


def test_calibration_agrees_with_scikit_learns_calibration_curve():
    targets, probs = _data(2)
    probs[:5, 0] = [0.1, 0.2, 0.3, 0.9, 1.0]  # values on bin edges
    for j in range(3):
        got = calibration(targets[:, j], probs[:, j], bins=10)
        filled = [b for b in got["bins"] if b["count"]]
        prob_true, prob_pred = calibration_curve(targets[:, j], probs[:, j], n_bins=10, strategy="uniform")
        assert [b["fraction_positive"] for b in filled] == pytest.approx(prob_true.tolist())
        assert [b["mean_probability"] for b in filled] == pytest.approx(prob_pred.tolist())
        assert sum(b["count"] for b in got["bins"]) == len(targets)
        counts = np.array([b["count"] for b in filled])
        own = np.sum(counts / counts.sum() * np.abs(prob_true - prob_pred))
        assert got["ece"] == pytest.approx(own)


def test_the_scores_carry_curves_and_calibration_per_label_and_stay_json():
    targets, probs = _data(3)
    labels = ["a", "b", "c", "none"]
    m = multilabel_metrics(targets, probs, labels, [0.5] * 4, resamples=0)
    assert set(m["pr_curves"]) == set(labels) and m["pr_curves"]["none"] is None
    assert m["pr_curves"]["a"] == pr_curve(targets[:, 0], probs[:, 0])
    for j, name in enumerate(labels):
        assert m["per_label"][name]["ece"] == m["calibration"][name]["ece"]
        assert m["calibration"][name] == calibration(targets[:, j], probs[:, j])
    assert m["macro_ece"] == pytest.approx(np.mean([m["calibration"][x]["ece"] for x in labels]))
    json.dumps(m, allow_nan=False)


def test_an_evaluation_stored_without_curves_gets_them_from_its_predictions():
    targets, probs = _data(4)
    labels = ["a", "b", "c", "none"]
    paths = [f"{i}.png" for i in range(len(targets))]
    full = json.loads(
        json.dumps(summarize_multilabel(labels, [0.5] * 4, targets, probs, paths, resamples=0).to_dict(True))
    )
    old = {k: v for k, v in full.items() if k not in ("pr_curves", "calibration", "macro_ece")}
    old["per_label"] = {
        name: {k: v for k, v in r.items() if k != "ece"} for name, r in full["per_label"].items()
    }
    again = with_label_curves(old)
    for key in ("pr_curves", "calibration", "macro_ece", "per_label"):
        assert again[key] == pytest.approx(full[key]) if key == "macro_ece" else again[key] == full[key]
    assert with_label_curves(full) is full
    assert "pr_curves" not in with_label_curves({k: v for k, v in old.items() if k != "predictions"})
    assert label_curves(np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"])["macro_ece"] is None
