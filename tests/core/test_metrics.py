"""Metrics against small cases computed by hand (scikit-learn's definitions where they exist)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tlstudio.core.results.metrics import (
    apply_temperature,
    binary_auc,
    classification_metrics,
    fit_temperature,
    reliability,
    top_k_accuracy,
)

LABELS = ["a", "b", "c"]


def one_hot_probs(pred, confidence=0.8, k=3):
    probs = np.full((len(pred), k), (1 - confidence) / (k - 1))
    probs[np.arange(len(pred)), pred] = confidence
    return probs


def test_per_class_and_averages_by_hand():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y, one_hot_probs(pred), LABELS)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    a, b, c = (m["per_class"][x] for x in LABELS)
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert a["f1"] == pytest.approx(0.8)
    assert (b["precision"], b["recall"], b["f1"]) == (0.5, 0.5, 0.5)
    assert (c["precision"], c["recall"]) == (0.5, 1.0) and c["f1"] == pytest.approx(2 / 3)
    assert m["averages"]["macro"]["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["averages"]["weighted"]["recall"] == pytest.approx(4 / 6)  # weighted recall = accuracy
    assert m["averages"]["weighted"]["f1"] == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3) / 6)
    assert m["loss"] == pytest.approx(-(4 * math.log(0.8) + 2 * math.log(0.1)) / 6)


def test_a_class_never_predicted_and_a_class_absent_from_the_data():
    labels = ["a", "b", "c", "d"]
    y = np.array([0, 0, 1, 1])  # c and d absent from the data
    pred = np.array([0, 0, 0, 2])  # b never predicted, c predicted once (wrongly)
    m = classification_metrics(y, one_hot_probs(pred, k=4), labels)
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0 + 2}
    assert m["per_class"]["c"]["support"] == 0 and m["per_class"]["c"]["precision"] == 0.0
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro over the classes seen in truth or predictions (a, b, c), as scikit-learn does by default
    f1_a = 2 * (2 / 3) * 1 / (2 / 3 + 1)
    assert m["averages"]["macro"]["f1"] == pytest.approx(f1_a / 3)
    assert m["auc"]["per_class"]["c"] is None and m["auc"]["per_class"]["d"] is None
    assert m["auc"]["macro"] == pytest.approx(np.mean([m["auc"]["per_class"][x] for x in "ab"]))


def test_a_single_test_image():
    m = classification_metrics([1], np.array([[0.2, 0.7, 0.1]]), LABELS)
    assert m["accuracy"] == 1.0 and m["top_k"] == {"1": 1.0}
    assert m["auc"]["macro"] is None  # one image: no class has both positives and negatives
    assert m["ece"] == pytest.approx(0.3)
    assert m["averages"]["macro"]["f1"] == 1.0  # only class b is seen


def test_top_k():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    y = np.array([1, 0, 0])
    assert top_k_accuracy(y, probs, 1) == 0.0
    assert top_k_accuracy(y, probs, 2) == pytest.approx(1 / 3)
    assert top_k_accuracy(y, probs, 3) == 1.0
    assert top_k_accuracy(y, probs, 10) == 1.0


def test_auc_matches_the_pairwise_definition_with_ties():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.8, 0.1])
    positive = np.array([True, True, False, True, False, False])
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p in scores[positive] for n in scores[~positive]]
    assert binary_auc(positive, scores) == pytest.approx(np.mean(pairs))
    assert binary_auc(np.array([True, True]), np.array([0.1, 0.2])) is None


def test_expected_calibration_error_by_hand():
    # confidences 0.95 (right), 0.95 (wrong), 0.55 (right): bins (0.9, 1] and (0.5, 0.6]
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45]])
    y = np.array([0, 1, 0])
    result = reliability(y, probs)
    assert result["ece"] == pytest.approx(2 / 3 * abs(0.5 - 0.95) + 1 / 3 * abs(1 - 0.55))
    filled = [b for b in result["bins"] if b["count"]]
    assert [(b["lower"], b["count"]) for b in filled] == [(0.5, 1), (pytest.approx(0.9), 2)]


def test_temperature_scaling_fixes_overconfidence_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.0
    calibrated = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # true probabilities
    overconfident = apply_temperature(calibrated, 1 / 3)  # logits × 3
    t = fit_temperature(y, overconfident)
    assert t == pytest.approx(3.0, rel=0.15)
    fixed = apply_temperature(overconfident, t)
    assert reliability(y, fixed)["ece"] < reliability(y, overconfident)["ece"] / 3
    assert (fixed.argmax(1) == overconfident.argmax(1)).all()


def test_the_headline_is_one_line_for_every_kind_of_run():
    from tlstudio.core.results.metrics import headline

    scored = {
        "test_accuracy": 0.95,
        "test_accuracy_low": 0.91,
        "test_accuracy_high": 0.97,
        "test_images": 120,
    }
    assert headline(scored) == "test accuracy 0.950 (95% interval 0.91–0.97, 120 images)"
    assert headline({"test_accuracy": 0.5}) == "test accuracy 0.500"
    assert headline({"val_accuracy": 0.8}) == "no test split; validation accuracy 0.800"
    assert headline({}) == "no test split"
