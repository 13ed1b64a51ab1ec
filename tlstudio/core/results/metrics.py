"""Classification metrics from true labels and predicted probabilities (NumPy only).

Definitions follow scikit-learn's where one exists:
- precision / recall / F1 per class with ``zero_division=0`` (a class never predicted has
  precision 0; a class absent from the data has recall 0 and support 0);
- macro averages over the classes that occur in the true *or* the predicted labels (scikit-learn's
  default label set), weighted averages by support;
- one-vs-rest ROC AUC per class via the Mann–Whitney rank statistic (ties count one half),
  undefined (``None``) for a class with no positives or no negatives; the macro AUC averages the
  defined ones;
- log loss: mean negative log probability of the true class (probabilities clipped at 1e-7);
- expected calibration error with equal-width confidence bins (Guo et al., 2017);
- balanced accuracy: the mean recall over the classes present in the true labels
  (``balanced_accuracy_score``); macro F1 as above (``f1_score(average="macro")``), each with a 95%
  percentile-bootstrap interval over the images (accuracy: Wilson's).
Written by hand rather than importing scikit-learn, which TL Studio does not otherwise need.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from tlstudio.core.results.error_order import cell_predictions, ordered_errors  # noqa: F401 (re-exported)
from tlstudio.core.results.headline import headline  # noqa: F401 (re-exported)
from tlstudio.core.results.intervals import wilson_interval, within_chance  # noqa: F401 (re-exported)
from tlstudio.core.settings import BOOTSTRAP_RESAMPLES

EPS = 1e-7
TOP_K = (1, 3, 5)
ECE_BINS = 10


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """k×k counts; rows: true class, columns: predicted class."""
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def per_class_scores(cm: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every class."""
    out = {}
    for i, name in enumerate(labels):
        tp = int(cm[i, i])
        support = int(cm[i].sum())
        predicted = int(cm[:, i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return out


def averages(cm: np.ndarray, per_class: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Macro (over classes seen in truth or predictions) and support-weighted averages."""
    rows = list(per_class.values())
    seen = [i for i in range(len(rows)) if cm[i].sum() or cm[:, i].sum()]
    total = sum(r["support"] for r in rows)
    out: dict[str, dict[str, float]] = {}
    for key in ("precision", "recall", "f1"):
        out.setdefault("macro", {})[key] = float(np.mean([rows[i][key] for i in seen])) if seen else 0.0
        out.setdefault("weighted", {})[key] = (
            sum(r[key] * r["support"] for r in rows) / total if total else 0.0
        )
    return out


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of images whose true class is among the ``k`` most probable."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def binary_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of ``scores`` for a boolean ``positive`` mask; None when one side is empty."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # mean of ranks start+1 … end
            start = end
    return ranks


def one_vs_rest_auc(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, object]:
    """Per-class one-vs-rest AUC and their macro average (None where undefined)."""
    per_class = {name: binary_auc(np.asarray(y_true) == i, probs[:, i]) for i, name in enumerate(labels)}
    defined = [v for v in per_class.values() if v is not None]
    return {"macro": float(np.mean(defined)) if defined else None, "per_class": per_class}


def log_loss(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean cross-entropy of the true class."""
    p = np.clip(probs[np.arange(len(y_true)), y_true], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def reliability(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> dict[str, object]:
    """Expected calibration error and the reliability diagram's bins (confidence = top probability)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (lo, hi]
    rows, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        row = {"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": n}
        if n:
            row["accuracy"] = float(correct[mask].mean())
            row["confidence"] = float(confidence[mask].mean())
            ece += n / len(confidence) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {"ece": float(ece), "bins": rows}


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the same ranking, confidences softened (T > 1) or sharpened (T < 1)."""
    logits = np.log(np.clip(probs, EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(y_true: np.ndarray, probs: np.ndarray) -> float:
    """The temperature minimising the log loss of ``probs`` (Guo et al., 2017).

    The loss is convex in 1/T, so a golden-section search over 1/T in [0.05, 20] finds it.
    """
    y_true = np.asarray(y_true)

    def loss(beta: float) -> float:
        return log_loss(y_true, apply_temperature(probs, 1.0 / beta))

    lo, hi = math.log(0.05), math.log(20.0)  # search log(1/T): the bracket spans both directions evenly
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(math.exp(a)), loss(math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(math.exp(b))
    return float(1.0 / math.exp((lo + hi) / 2))


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes that occur in the true labels (scikit-learn's definition)."""
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present])) if present.any() else 0.0


def macro_f1(cm: np.ndarray) -> float:
    """F1 averaged over the classes seen in the true or the predicted labels (as ``averages``)."""
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    seen = (support + predicted) > 0
    if not seen.any():
        return 0.0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    return float(np.mean(f1[seen]))


def bootstrap_intervals(
    y_true: ArrayLike, y_pred: ArrayLike, k: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict[str, list[float]]:
    """95% percentile-bootstrap intervals of the balanced accuracy and the macro F1.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        k: number of classes.
        resamples: images drawn with replacement this many times (0, or fewer than 2 images: none).
        seed: the draws' seed (the same images give the same interval).

    Returns:
        ``{"balanced_accuracy": [low, high], "macro_f1": [low, high]}``, or ``{}``.

    Example:
        >>> bootstrap_intervals([0, 0, 1, 1], [0, 1, 1, 1], 2, resamples=200)["macro_f1"][1] <= 1.0
        True
    """
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    n = len(y_true)
    if resamples <= 0 or n < 2:
        return {}
    draws = np.random.default_rng(seed).integers(0, n, (resamples, n))
    cells = y_true[draws] * k + y_pred[draws] + (np.arange(resamples) * k * k)[:, None]
    cms = np.bincount(cells.ravel(), minlength=resamples * k * k).reshape(resamples, k, k)
    tp = np.diagonal(cms, axis1=1, axis2=2).astype(float)
    support, predicted = cms.sum(axis=2), cms.sum(axis=1)
    present, seen = support > 0, (support + predicted) > 0  # (every resample has an image: both > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=seen)
    drawn = {
        "balanced_accuracy": (recall * present).sum(1) / present.sum(1),
        "macro_f1": (f1 * seen).sum(1) / seen.sum(1),
    }
    return {key: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for key, v in drawn.items()}


def classification_metrics(
    y_true: ArrayLike, probs: ArrayLike, labels: list[str], *, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, object]:
    """Every metric above for one set of predictions, JSON-ready (``resamples``: the bootstrap's)."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(labels)
    y_pred = probs.argmax(axis=1)
    cm = confusion(y_true, y_pred, k)
    per_class = per_class_scores(cm, labels)
    calibration = reliability(y_true, probs)
    n = len(y_true)
    intervals = {"accuracy": list(wilson_interval(int(np.trace(cm)), n))}
    intervals |= bootstrap_intervals(y_true, y_pred, k, resamples)
    return {
        "accuracy": float(np.trace(cm) / n),
        "balanced_accuracy": balanced_accuracy(cm),
        "macro_f1": macro_f1(cm),
        "intervals": intervals,  # 95%: Wilson's for accuracy, a percentile bootstrap for the others
        "bootstrap_resamples": resamples,
        "top_k": {str(n): top_k_accuracy(y_true, probs, n) for n in TOP_K if n < k or n == 1},
        "loss": log_loss(y_true, probs),
        "per_class": per_class,
        "averages": averages(cm, per_class),
        "auc": one_vs_rest_auc(y_true, probs, labels),
        "ece": calibration["ece"],
        "reliability": calibration["bins"],
        "confusion_matrix": cm.tolist(),
    }


def tied_by_bootstrap(best: np.ndarray, other: np.ndarray, draws: np.ndarray) -> bool:
    """Whether a paired bootstrap cannot tell ``other`` from ``best`` (what `tlstudio rank` and
    `tlstudio sweep` call a tie): the 2.5th percentile of the mean of ``best - other`` over the
    resamples is at most 0.

    Args:
        best: 1.0/0.0 per image, right or wrong, for the best candidate.
        other: the same images, for another.
        draws: (resamples, images) indices drawn with replacement.
    """
    difference = np.asarray(best, float) - np.asarray(other, float)
    return bool(np.percentile(difference[draws].mean(1), 2.5) <= 0.0)
