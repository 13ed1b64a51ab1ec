"""The gallery by label error of a multi-label run: for one label, the images it missed (the label is
true, its probability is below the label's threshold) and the images it was given falsely (at or above
the threshold, not true), the most wrong first (the farthest from the threshold).

It reads the records of ``multilabel_evaluation`` (each image's true labels and every label's
probability), as ``evaluation.json`` and ``tlstudio evaluate --predictions --json`` hold them.

Example:
    >>> preds = [{"path": "a.png", "true": ["cat"], "probabilities": {"cat": 0.2, "dog": 0.9}}]
    >>> errors = label_errors(preds, {"cat": 0.5, "dog": 0.5}, "dog")
    >>> [e["path"] for e in errors.false], errors.missed
    (['a.png'], [])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

MISSED: Literal["missed"] = "missed"
FALSE: Literal["false"] = "false"


class LabelError(TypedDict):
    """One image wrong for one label."""

    path: str
    label: str
    kind: Literal["missed", "false"]
    probability: float  # the label's sigmoid output
    threshold: float  # the label's decision threshold
    distance: float  # how wrong: |probability - threshold|
    true: list[str]  # the image's true labels
    predicted: list[str]  # the labels given at their thresholds


@dataclass(frozen=True)
class LabelErrors:
    """A label's missed and false images, each list the most wrong first."""

    label: str
    threshold: float
    missed: list[LabelError]
    false: list[LabelError]


def _given(probabilities: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    return [name for name, p in probabilities.items() if float(p) >= float(thresholds[name])]


def label_errors(
    predictions: Sequence[Mapping[str, Any]], thresholds: Mapping[str, float], label: str
) -> LabelErrors:
    """Which images a label is wrong on, sorted by their distance from its threshold (largest first;
    equal distances by path).

    Args:
        predictions: one record per image: ``path``, ``true`` (its labels) and ``probabilities``
            (label → probability).
        thresholds: label → decision threshold (a probability at or above it gives the label).
        label: the label to look at.

    Returns:
        The label's missed and false images.

    Raises:
        ValueError: an unknown label, or a record without that label's probability.
    """
    if label not in thresholds:
        raise ValueError(f"unknown label {label!r} (the run's labels: {', '.join(thresholds)})")
    threshold = float(thresholds[label])
    missed: list[LabelError] = []
    false: list[LabelError] = []
    for record in predictions:
        probabilities = record["probabilities"]
        if label not in probabilities:
            raise ValueError(f"{record['path']}: no probability for {label!r}")
        p = float(probabilities[label])
        true = [str(x) for x in record["true"]]
        is_true, given = label in true, p >= threshold
        if is_true == given:
            continue
        error: LabelError = {
            "path": str(record["path"]),
            "label": label,
            "kind": MISSED if is_true else FALSE,
            "probability": p,
            "threshold": threshold,
            "distance": abs(p - threshold),
            "true": true,
            "predicted": _given(probabilities, thresholds),
        }
        (missed if is_true else false).append(error)
    for errors in (missed, false):
        errors.sort(key=lambda e: (-e["distance"], e["path"]))
    return LabelErrors(label, threshold, missed, false)


def label_error_counts(
    predictions: Sequence[Mapping[str, Any]], thresholds: Mapping[str, float]
) -> dict[str, tuple[int, int]]:
    """Label → (missed images, false images), in the thresholds' label order."""
    counts = {}
    for label in thresholds:
        errors = label_errors(predictions, thresholds, label)
        counts[label] = (len(errors.missed), len(errors.false))
    return counts
