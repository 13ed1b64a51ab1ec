"""Multi-label scores from 0/1 label indicators and independent per-label probabilities (NumPy only).

- average precision per label as scikit-learn's ``average_precision_score`` defines it (the sum over
  distinct scores of precision × the rise in recall), undefined (None) for a label with no positive;
  macro mAP averages the defined ones, micro mAP pools every (image, label) pair;
- decisions at per-label thresholds (``probability ≥ threshold``): precision, recall and F1 per label
  and their macro and micro averages (``zero_division=0``), subset accuracy (every label of an image
  right), Hamming loss (the share of label decisions wrong);
- 95% intervals: Wilson's for subset accuracy (a proportion of images, ``metrics.wilson_interval``),
  a percentile bootstrap over images for the rest;
- thresholds tuned on validation: per label, the one of highest F1 (half-way to the next lower
  score), else ``MULTI_LABEL_THRESHOLD`` for a label with no positive there.

Written in NumPy (checked against scikit-learn in the tests) so a bootstrap of a thousand resamples
takes a fraction of a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tlstudio.core.results.metrics import wilson_interval
from tlstudio.core.results.multilabel_curves import label_curves
from tlstudio.core.settings import BOOTSTRAP_RESAMPLES, MULTI_LABEL_THRESHOLD

INTERVAL_KEYS = ("macro_map", "micro_map", "macro_f1", "micro_f1", "hamming_loss")


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision of one label's scores; None when ``truth`` has no positive."""
    truth = np.asarray(truth, bool).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    positives = int(truth.sum())
    if positives == 0:
        return None
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last position of each distinct score
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def tune_thresholds(targets: np.ndarray, probs: np.ndarray) -> list[float]:
    """Per label, the threshold of the highest F1 on these images.

    Args:
        targets: (images, labels) 0/1.
        probs: (images, labels) probabilities.

    Returns:
        One threshold per label: half-way between the score that gave the best F1 and the next lower
        score, so the same images are above it; ``MULTI_LABEL_THRESHOLD`` for a label with no positive.
    """
    targets = np.asarray(targets) > 0.5
    probs = np.asarray(probs, np.float64)
    out = []
    for j in range(targets.shape[1]):
        truth, scores = targets[:, j], probs[:, j]
        positives = int(truth.sum())
        if positives == 0:
            out.append(MULTI_LABEL_THRESHOLD)
            continue
        order = np.argsort(-scores, kind="mergesort")
        s, t = scores[order], truth[order]
        last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
        tp = np.cumsum(t)[last]
        fp = last + 1 - tp
        f1 = 2 * tp / (2 * tp + fp + (positives - tp))
        best = int(np.argmax(f1))
        below = s[last[best] + 1] if last[best] + 1 < len(s) else 0.0
        out.append(float((s[last[best]] + below) / 2))
    return out


def decision_scores(targets: np.ndarray, decisions: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Precision, recall, F1 and support per label, macro and micro averages, subset accuracy and
    Hamming loss of 0/1 decisions."""
    t = np.asarray(targets) > 0.5
    d = np.asarray(decisions, bool)
    tp = (t & d).sum(0)
    fp = (~t & d).sum(0)
    fn = (t & ~d).sum(0)
    per_label = {}
    for j, name in enumerate(labels):
        p, r, f = _prf(tp[j], fp[j], fn[j])
        per_label[name] = {"precision": p, "recall": r, "f1": f, "support": int(t[:, j].sum())}
    micro = dict(zip(("precision", "recall", "f1"), _prf(tp.sum(), fp.sum(), fn.sum()), strict=True))
    macro = {k: float(np.mean([row[k] for row in per_label.values()])) for k in ("precision", "recall", "f1")}
    return {
        "per_label": per_label,
        "micro": micro,
        "macro": macro,
        "subset_accuracy": float((t == d).all(1).mean()),
        "hamming_loss": float((t != d).mean()),
    }


def ranking_scores(targets: np.ndarray, probs: np.ndarray) -> tuple[list[float | None], float | None, float]:
    """(per-label AP, macro mAP over labels with a positive, micro mAP)."""
    t = np.asarray(targets) > 0.5
    per_label = [average_precision(t[:, j], probs[:, j]) for j in range(t.shape[1])]
    defined = [ap for ap in per_label if ap is not None]
    macro = float(np.mean(defined)) if defined else None
    micro = average_precision(t.ravel(), np.asarray(probs).ravel())
    return per_label, macro, micro if micro is not None else 0.0


def multilabel_metrics(
    targets: np.ndarray,
    probs: np.ndarray,
    labels: list[str],
    thresholds: list[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Every multi-label score with its 95% interval, JSON-ready.

    Args:
        targets: (images, labels) 0/1.
        probs: (images, labels) independent probabilities.
        labels: label names in column order.
        thresholds: per-label decision thresholds.
        resamples: bootstrap resamples for the intervals (0: none).
        seed: the bootstrap's seed.

    Returns:
        ``macro_map``, ``micro_map``, ``per_label`` (AP, precision, recall, F1, support, threshold),
        ``macro``/``micro`` precision, recall and F1, ``subset_accuracy``, ``hamming_loss`` and
        ``intervals`` ``{name: [low, high]}``; per label its precision–recall curve and calibration
        (``pr_curves``, ``calibration``, ``macro_ece``, each label's ``ece``: see ``multilabel_curves``).
    """
    targets = np.asarray(targets, np.float64)
    probs = np.asarray(probs, np.float64)
    cut = np.asarray(thresholds, np.float64)
    decided = decision_scores(targets, probs >= cut, labels)
    aps, macro_map, micro_map = ranking_scores(targets, probs)
    for j, name in enumerate(labels):
        decided["per_label"][name] |= {"ap": aps[j], "threshold": float(cut[j])}
    curves = label_curves(targets, probs, list(labels))
    for name, calibrated in curves["calibration"].items():
        decided["per_label"][name]["ece"] = calibrated["ece"]
    n = len(targets)
    out = {
        "task": "multi_label",
        "macro_map": macro_map,
        "micro_map": micro_map,
        **decided,
        "num_labels": len(labels),
        "labels_per_image": float(targets.sum(1).mean()) if n else 0.0,
        **curves,
    }
    low, high = wilson_interval(round(decided["subset_accuracy"] * n), n)
    intervals = {"subset_accuracy": [low, high]}
    if resamples > 0 and n > 1:
        intervals |= _bootstrap(targets, probs, cut, resamples, seed)
    out["intervals"] = intervals
    out["bootstrap_resamples"] = resamples
    return out


def _bootstrap(targets, probs, cut, resamples: int, seed: int) -> dict[str, list[float]]:
    """Percentile 95% intervals of ``INTERVAL_KEYS`` over images drawn with replacement."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    drawn: dict[str, list[float]] = {k: [] for k in INTERVAL_KEYS}
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        t, p = targets[idx], probs[idx]
        _, macro_map, micro_map = ranking_scores(t, p)
        d = p >= cut
        tb, db = t > 0.5, d
        tp, fp, fn = (tb & db).sum(0), (~tb & db).sum(0), (tb & ~db).sum(0)
        values = {
            "macro_map": macro_map,
            "micro_map": micro_map,
            "macro_f1": float(np.mean([_prf(a, b, c)[2] for a, b, c in zip(tp, fp, fn, strict=True)])),
            "micro_f1": _prf(tp.sum(), fp.sum(), fn.sum())[2],
            "hamming_loss": float((tb != db).mean()),
        }
        for key, value in values.items():
            if value is not None:
                drawn[key].append(value)
    return {
        key: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for key, v in drawn.items() if v
    }


def _prf(tp, fp, fn) -> tuple[float, float, float]:
    tp, fp, fn = int(tp), int(fp), int(fn)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
