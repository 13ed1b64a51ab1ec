"""Multi-label scores against scikit-learn, thresholds tuned for F1, the multi-label probe."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_score,
    recall_score,
)

from tlstudio.core.results.multilabel_metrics import average_precision, multilabel_metrics, tune_thresholds
from tlstudio.core.settings import MULTI_LABEL_THRESHOLD


def _data(seed: int = 0, n: int = 80, k: int = 5):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, k)) < 0.35).astype(int)
    targets[:, -1] = 0  # a label with no positive: AP undefined, left out of macro mAP
    noise = rng.normal(0, 0.35, (n, k))
    probs = 1 / (1 + np.exp(-(2.5 * (targets - 0.5) + noise * 3)))
    probs[:10, 0] = probs[10, 0]  # ties
    return targets, np.round(probs, 2)  # rounded: more ties


def test_scores_agree_with_scikit_learn():
    targets, probs = _data()
    labels = [f"l{i}" for i in range(targets.shape[1])]
    thresholds = [0.3, 0.5, 0.6, 0.45, 0.5]
    m = multilabel_metrics(targets, probs, labels, thresholds, resamples=0)
    decisions = (probs >= np.array(thresholds)).astype(int)
    for j, name in enumerate(labels[:-1]):
        assert m["per_label"][name]["ap"] == pytest.approx(
            average_precision_score(targets[:, j], probs[:, j])
        )
    assert m["per_label"]["l4"]["ap"] is None
    assert m["macro_map"] == pytest.approx(
        np.mean([average_precision_score(targets[:, j], probs[:, j]) for j in range(4)])
    )
    assert m["micro_map"] == pytest.approx(average_precision_score(targets, probs, average="micro"))
    for avg in ("macro", "micro"):
        assert m[avg]["f1"] == pytest.approx(f1_score(targets, decisions, average=avg, zero_division=0))
        assert m[avg]["precision"] == pytest.approx(
            precision_score(targets, decisions, average=avg, zero_division=0)
        )
        assert m[avg]["recall"] == pytest.approx(
            recall_score(targets, decisions, average=avg, zero_division=0)
        )
    per_f1 = f1_score(targets, decisions, average=None, zero_division=0)
    assert [m["per_label"][x]["f1"] for x in labels] == pytest.approx(per_f1)
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(targets, decisions))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(targets, decisions))


def test_average_precision_by_hand():
    # ranked: + - + -  → precision at the positives 1 and 2/3, recall steps of 1/2
    assert average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx(
        (1 + 2 / 3) / 2
    )


def test_intervals_hold_the_scores():
    targets, probs = _data(1)
    m = multilabel_metrics(targets, probs, [f"l{i}" for i in range(5)], [0.5] * 5, resamples=300)
    for key in ("macro_map", "micro_map", "subset_accuracy", "hamming_loss"):
        value = m[key]
        low, high = m["intervals"][key]
        assert low <= value <= high and high - low > 0.01


def test_thresholds_reach_the_best_f1_per_label_and_fall_back_without_positives():
    targets, probs = _data(2)
    thresholds = tune_thresholds(targets, probs)
    assert thresholds[-1] == MULTI_LABEL_THRESHOLD
    for j in range(4):
        got = f1_score(targets[:, j], probs[:, j] >= thresholds[j])
        best = max(f1_score(targets[:, j], probs[:, j] >= t) for t in np.unique(probs[:, j]))
        assert got == pytest.approx(best)


def test_the_multilabel_probe_learns_independent_labels():
    from tlstudio.core.training.probe_multilabel import fit_multilabel_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    targets = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, x[:, 3] < -0.3], 1).astype(np.float32)
    probe = fit_multilabel_probe(x, targets, seed=0)
    probs = probe.predict_proba(x)
    assert probs.shape == (120, 3) and probe.converged
    assert not np.allclose(probs.sum(1), 1.0)
    assert ((probs >= 0.5) == (targets > 0.5)).mean() > 0.95
    assert probe.cv_log_loss is not None and probe.cv_accuracy is None


def test_a_multilabel_run_no_better_than_the_label_shares_did_not_learn():
    from tlstudio.core.data.split import Manifest, ManifestEntry
    from tlstudio.core.training.run_outcome import learning_verdict

    rng = np.random.default_rng(0)
    entries = []
    for i in range(60):
        labels = ";".join(x for x in ("a", "b", "c") if rng.random() < 0.4)
        entries.append(ManifestEntry(f"{i}.png", "0", labels, "val" if i < 20 else "train"))
    manifest = Manifest(tuple(entries), multi_label=True)
    train = [e for e in entries if e.split == "train"]
    val = [e for e in entries if e.split == "val"]
    shares = np.array([np.mean([x in e.labels for e in train]) for x in "abc"])
    truth = np.array([[x in e.labels for x in "abc"] for e in val], float)
    p = np.clip(shares, 1e-7, 1 - 1e-7)
    prior_loss = float(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean())
    said = learning_verdict({"val_loss": prior_loss + 0.01, "loss": 0.1}, manifest)
    assert said is not None and "did not learn" in said and "validation loss" in said
    assert learning_verdict({"val_loss": prior_loss * 0.5, "loss": 0.1}, manifest) is None
