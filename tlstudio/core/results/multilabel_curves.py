"""Per-label precision–recall curves (scikit-learn's, downsampled) and calibration (reliability bins,
expected calibration error) of a multi-label model's independent probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np

from tlstudio.core.results.metrics import ECE_BINS
from tlstudio.core.settings import PR_CURVE_POINTS


def pr_curve(
    truth: np.ndarray, scores: np.ndarray, max_points: int = PR_CURVE_POINTS
) -> dict[str, Any] | None:
    """One label's precision–recall curve, at most ``max_points`` points.

    Args:
        truth: (images,) 0/1.
        scores: (images,) the label's probabilities.
        max_points: the most points kept (at least 3).

    Returns:
        ``precision``, ``recall`` (``sklearn.metrics.precision_recall_curve`` with
        ``drop_intermediate=True``, in its order: threshold rising, recall falling, ending at recall 0,
        precision 1) and ``thresholds`` (one fewer: the last point has none), thinned evenly over the
        thresholds keeping the first and the last; None for a label with no positive (no curve).

    Example:
        >>> pr_curve(np.array([1, 0, 1]), np.array([0.9, 0.4, 0.6]))["recall"]
        [1.0, 1.0, 0.5, 0.0]
    """
    from sklearn.metrics import precision_recall_curve

    truth = np.asarray(truth).ravel() > 0.5
    if not truth.any():
        return None
    precision, recall, thresholds = precision_recall_curve(
        truth, np.asarray(scores, np.float64).ravel(), drop_intermediate=True
    )
    keep = np.arange(len(thresholds))
    if len(keep) > max_points - 1:  # (the end point, recall 0, is kept besides)
        keep = np.unique(np.linspace(0, len(thresholds) - 1, max(max_points - 1, 2)).round().astype(int))
    points = np.r_[keep, len(precision) - 1]
    return {
        "precision": [float(v) for v in precision[points]],
        "recall": [float(v) for v in recall[points]],
        "thresholds": [float(v) for v in thresholds[keep]],
    }


def calibration(truth: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """One label's reliability bins and expected calibration error.

    The bins split [0, 1] evenly; a probability on an edge goes to the lower bin, as in
    ``sklearn.calibration.calibration_curve(strategy="uniform")`` (and the single-label reliability).

    Args:
        truth: (images,) 0/1.
        probs: (images,) the label's probabilities.
        bins: the number of bins.

    Returns:
        ``ece`` (the images' share in each bin × |share of positives − mean probability|, summed) and
        ``bins``: ``lower``, ``upper``, ``count`` and, in a bin with images, ``mean_probability`` and
        ``fraction_positive``.

    Example:
        >>> round(calibration(np.array([1, 0]), np.array([0.8, 0.1]), bins=2)["ece"], 3)
        0.15
    """
    truth = np.asarray(truth, np.float64).ravel() > 0.5
    probs = np.asarray(probs, np.float64).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], probs, side="left")  # scikit-learn's binning
    rows, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        row: dict[str, Any] = {"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": n}
        if n:
            row["mean_probability"] = float(probs[mask].mean())
            row["fraction_positive"] = float(truth[mask].mean())
            ece += n / len(probs) * abs(row["fraction_positive"] - row["mean_probability"])
        rows.append(row)
    return {"ece": float(ece), "bins": rows}


def label_curves(targets: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Every label's precision–recall curve and calibration, JSON-ready.

    Args:
        targets: (images, labels) 0/1.
        probs: (images, labels) independent probabilities.
        labels: label names in column order.

    Returns:
        ``pr_curves`` {label: ``pr_curve`` or None}, ``calibration`` {label: ``calibration``} and
        ``macro_ece`` (the labels' ECE averaged; None without images).
    """
    targets = np.asarray(targets, np.float64)
    probs = np.asarray(probs, np.float64)
    curves = {name: pr_curve(targets[:, j], probs[:, j]) for j, name in enumerate(labels)}
    if len(targets) == 0:
        return {"pr_curves": curves, "calibration": {}, "macro_ece": None}
    calibrated = {name: calibration(targets[:, j], probs[:, j]) for j, name in enumerate(labels)}
    macro = float(np.mean([c["ece"] for c in calibrated.values()])) if calibrated else None
    return {"pr_curves": curves, "calibration": calibrated, "macro_ece": macro}


def with_label_curves(evaluation: dict[str, Any]) -> dict[str, Any]:
    """A stored multi-label evaluation with its curves: as it is when it has them, else computed from
    its predictions (evaluations written before the curves were stored).

    Args:
        evaluation: ``evaluation.json`` of a multi-label run (``labels``, ``predictions``).

    Returns:
        The same dict, with ``pr_curves``, ``calibration`` and ``macro_ece`` where they could be made
        (each label's ``ece`` in ``per_label`` too).
    """
    if "pr_curves" in evaluation or not evaluation.get("predictions"):
        return evaluation
    labels = list(evaluation["labels"])
    predictions = evaluation["predictions"]
    targets = np.array([[name in p["true"] for name in labels] for p in predictions], np.float64)
    probs = np.array([[p["probabilities"][name] for name in labels] for p in predictions], np.float64)
    out = dict(evaluation) | label_curves(targets, probs, labels)
    per_label = {name: dict(row) for name, row in evaluation.get("per_label", {}).items()}
    for name, row in per_label.items():
        if name in out["calibration"]:
            row["ece"] = out["calibration"][name]["ece"]
    out["per_label"] = per_label
    return out
