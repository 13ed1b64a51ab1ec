"""The hand-written metrics (``core/results/metrics.py``) agree with scikit-learn's (and the Wilson
interval with SciPy's) on 200 random cases: 2–8 classes, 1–80 images, classes missing from the truth
or never predicted, tied scores, confident and flat predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from tlstudio.core.results.metrics import (
    ECE_BINS,
    TOP_K,
    binary_auc,
    bootstrap_intervals,
    classification_metrics,
    wilson_interval,
)
from tlstudio.core.settings import BOOTSTRAP_RESAMPLES

CASES = 200


def make_case(seed: int) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    """(true labels, probabilities, labels, scores tied): a random case, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 9))
    n = int(rng.integers(1, 81))
    present = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)  # some classes absent
    y_true = rng.choice(present, size=n)
    probs = rng.dirichlet(np.full(k, rng.choice([0.3, 1.0, 5.0])), size=n)  # peaked … flat
    if rng.random() < 0.5:  # a model that learned something: the true class lifted
        probs[np.arange(n), y_true] += rng.uniform(0, 2)
        probs /= probs.sum(axis=1, keepdims=True)
    tied = bool(rng.random() < 0.25)
    if tied:  # scores on a coarse grid: ties for the AUC's ranks
        probs = np.round(probs, 1) + 1e-3
        probs /= probs.sum(axis=1, keepdims=True)
    return y_true, probs, [f"c{i}" for i in range(k)], tied


@pytest.fixture(scope="module")
def cases():
    """Each case with TL Studio's metrics of it."""
    out = []
    for seed in range(CASES):
        y_true, probs, labels, tied = make_case(seed)
        out.append((seed, y_true, probs, labels, tied, classification_metrics(y_true, probs, labels)))
    return out


def test_the_cases_cover_the_hard_corners(cases):
    assert sum(len(np.unique(c[1])) < len(c[3]) for c in cases) > 50  # a class absent from the truth
    assert sum(len(np.unique(c[2].argmax(1))) < len(c[3]) for c in cases) > 50  # one never predicted
    assert sum(c[4] for c in cases) > 20 and sum(len(c[1]) == 1 for c in cases) >= 1


def test_accuracy_confusion_matrix_and_per_class_scores(cases):
    for seed, y_true, probs, labels, _, ours in cases:
        k, y_pred = len(labels), probs.argmax(axis=1)
        assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred)), seed
        assert ours["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=range(k)).tolist(), seed
        p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(k), zero_division=0)
        for i, name in enumerate(labels):
            row = ours["per_class"][name]
            assert [row["precision"], row["recall"], row["f1"]] == pytest.approx([p[i], r[i], f[i]]), seed
            assert row["support"] == s[i], seed


def test_macro_and_weighted_averages(cases):
    for seed, y_true, probs, _, _, ours in cases:
        y_pred = probs.argmax(axis=1)
        for average in ("macro", "weighted"):  # scikit-learn's default label set: truth ∪ predictions
            p, r, f, _ = sk.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
            got = ours["averages"][average]
            assert [got["precision"], got["recall"], got["f1"]] == pytest.approx([p, r, f]), (seed, average)


def test_top_k_accuracy(cases):
    for seed, y_true, probs, labels, tied, ours in cases:
        k = len(labels)
        assert set(ours["top_k"]) == {str(n) for n in TOP_K if n < k or n == 1}
        if tied or k == 2:  # scikit-learn breaks ties its own way; for two classes it wants one score
            continue
        for n in ours["top_k"]:
            expected = sk.top_k_accuracy_score(y_true, probs, k=int(n), labels=range(k))
            assert ours["top_k"][n] == pytest.approx(expected), (seed, n)


def test_one_vs_rest_auc_with_ties(cases):
    for seed, y_true, probs, labels, _, ours in cases:
        defined = []
        for i, name in enumerate(labels):
            positive = y_true == i
            if positive.all() or not positive.any():
                assert ours["auc"]["per_class"][name] is None, seed
                continue
            expected = sk.roc_auc_score(positive, probs[:, i])
            assert ours["auc"]["per_class"][name] == pytest.approx(expected), (seed, name)
            defined.append(expected)
        assert ours["auc"]["macro"] == (pytest.approx(np.mean(defined)) if defined else None), seed
        if len(labels) > 2 and len(np.unique(y_true)) == len(labels):  # scikit-learn's own OvR macro
            expected = sk.roc_auc_score(y_true, probs, multi_class="ovr", average="macro")
            assert ours["auc"]["macro"] == pytest.approx(expected), seed


def test_binary_auc_by_the_pairwise_definition():
    rng = np.random.default_rng(7)
    positive = rng.random(40) < 0.4
    scores = np.round(rng.random(40), 1)  # many ties
    pairs = [(p > q) + 0.5 * (p == q) for p in scores[positive] for q in scores[~positive]]
    assert binary_auc(positive, scores) == pytest.approx(np.mean(pairs))
    assert binary_auc(positive, scores) == pytest.approx(sk.roc_auc_score(positive, scores))


def test_log_loss(cases):
    for seed, y_true, probs, labels, _, ours in cases:
        if probs[np.arange(len(y_true)), y_true].min() < 1e-7:  # clipped differently (ours at 1e-7)
            continue
        expected = sk.log_loss(y_true, probs, labels=range(len(labels)))
        assert ours["loss"] == pytest.approx(expected, rel=1e-9), seed


def test_expected_calibration_error_and_reliability_bins(cases):
    for seed, y_true, probs, _, _, ours in cases:
        confidence = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == y_true).astype(int)
        edges = np.linspace(0, 1, ECE_BINS + 1)
        if np.isin(confidence, edges).any():  # (np.histogram's bins close on the left, ours on the right)
            continue
        # scikit-learn's reliability diagram: per non-empty equal-width bin, accuracy and confidence
        accuracy, mean_confidence = calibration_curve(
            correct, confidence, n_bins=ECE_BINS, strategy="uniform"
        )
        counts = np.histogram(confidence, bins=edges)[0]
        filled = [row for row in ours["reliability"] if row["count"]]
        assert [row["count"] for row in ours["reliability"]] == counts.tolist(), seed
        assert [row["accuracy"] for row in filled] == pytest.approx(accuracy), seed
        assert [row["confidence"] for row in filled] == pytest.approx(mean_confidence), seed
        expected = float(np.sum(counts[counts > 0] / len(y_true) * np.abs(accuracy - mean_confidence)))
        assert ours["ece"] == pytest.approx(expected, abs=1e-12), seed


def test_wilson_interval_bounds_and_scipy():
    rng = np.random.default_rng(11)
    for _ in range(CASES):
        n = int(rng.integers(1, 500))
        successes = int(rng.integers(0, n + 1))
        low, high = wilson_interval(successes, n)
        assert 0.0 <= low <= successes / n <= high <= 1.0
        reference = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low, high) == pytest.approx((reference.low, reference.high), abs=2e-5)  # z 1.96 vs 1.95996
        wider = wilson_interval(successes, n, z=2.58)  # 99%: contains the 95% interval
        assert wider[0] <= low + 1e-12 and high <= wider[1] + 1e-12  # (1.0 - 2e-16 when all are right)
        more = wilson_interval(4 * successes, 4 * n)  # the same rate on four times the images: narrower
        assert more[1] - more[0] < high - low
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_balanced_accuracy_and_macro_f1_with_their_bootstrap_intervals(cases):
    for seed, y_true, probs, _, _, ours in cases:
        y_pred = probs.argmax(axis=1)
        with warnings.catch_warnings():  # a class predicted but absent from the truth: sklearn warns
            warnings.simplefilter("ignore")
            balanced = sk.balanced_accuracy_score(y_true, y_pred)
        assert ours["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12), seed
        f1 = sk.f1_score(y_true, y_pred, average="macro", zero_division=0)
        assert ours["macro_f1"] == pytest.approx(f1, abs=1e-12), seed
        ci = ours["intervals"]
        assert ci["accuracy"] == pytest.approx(
            list(wilson_interval(round(ours["accuracy"] * len(y_true)), len(y_true)))
        )
        if len(y_true) < 2:
            assert "macro_f1" not in ci
            continue
        for key in ("balanced_accuracy", "macro_f1"):
            assert 0 <= ci[key][0] <= ci[key][1] <= 1, seed
    # the intervals are the percentiles of sklearn's scores over the same resamples (200 of them here)
    _, y_true, probs, labels, _, ours = next(
        c for c in cases if len(c[1]) >= 40 and 0.3 < c[5]["accuracy"] < 0.9
    )
    y_pred = probs.argmax(axis=1)
    assert ours["bootstrap_resamples"] == BOOTSTRAP_RESAMPLES
    assert ours["intervals"] == {
        "accuracy": ours["intervals"]["accuracy"],
        **bootstrap_intervals(y_true, y_pred, len(labels), BOOTSTRAP_RESAMPLES),
    }
    draws = np.random.default_rng(0).integers(0, len(y_true), (200, len(y_true)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        balanced = [sk.balanced_accuracy_score(y_true[d], y_pred[d]) for d in draws]
    f1 = [sk.f1_score(y_true[d], y_pred[d], average="macro", zero_division=0) for d in draws]
    few = bootstrap_intervals(y_true, y_pred, len(labels), resamples=200)
    assert few["balanced_accuracy"] == pytest.approx(np.percentile(balanced, [2.5, 97.5]))
    assert few["macro_f1"] == pytest.approx(np.percentile(f1, [2.5, 97.5]))
    assert ours["intervals"]["macro_f1"][0] < ours["macro_f1"] < ours["intervals"]["macro_f1"][1]
