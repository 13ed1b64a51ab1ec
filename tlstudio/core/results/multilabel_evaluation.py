"""Evaluate a multi-label model on listed images: its probabilities, decisions at the thresholds, scores."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from tlstudio.core.data.imagefile import ImageProblem
from tlstudio.core.data.pipeline import load_for_model, multi_hot
from tlstudio.core.data.scan import in_folder
from tlstudio.core.results.multilabel_metrics import multilabel_metrics

BATCH = 64


class MultiLabelPrediction(TypedDict):
    """One image's record: its labels, those given at the thresholds, and every label's probability."""

    path: str
    true: list[str]
    predicted: list[str]
    missed: list[str]  # true, not given
    false: list[str]  # given, not true
    probabilities: dict[str, float]


@dataclass
class MultiLabelEvaluation:
    """Scores of a multi-label model on a set of images (see ``multilabel_metrics``)."""

    labels: list[str]
    thresholds: list[float]
    metrics: dict[str, Any]  # JSON-ready, see multilabel_metrics
    num_images: int
    skipped: list[dict[str, str]]
    predictions: list[MultiLabelPrediction]
    targets: np.ndarray = field(repr=False)  # (images, labels) 0/1
    probs: np.ndarray = field(repr=False)  # (images, labels) probabilities
    task: str = "multi_label"

    def errors(self) -> list[MultiLabelPrediction]:
        """Images with a missed or a false label, the most wrong first (largest probability gap)."""
        wrong = [p for p in self.predictions if p["missed"] or p["false"]]
        return sorted(wrong, key=lambda p: -_gap(p))

    def to_dict(self, with_predictions: bool = False) -> dict[str, Any]:
        """JSON-ready form."""
        data: dict[str, Any] = {
            **self.metrics,
            "labels": self.labels,
            "thresholds": dict(zip(self.labels, self.thresholds, strict=True)),
            "num_images": self.num_images,
            "skipped": self.skipped,
        }
        if with_predictions:
            data["predictions"] = self.predictions
        return data


def _gap(prediction: MultiLabelPrediction) -> float:
    probs = prediction["probabilities"]
    return max(
        [1 - probs[x] for x in prediction["missed"]] + [probs[x] for x in prediction["false"]], default=0.0
    )


def summarize_multilabel(
    labels: list[str],
    thresholds: list[float],
    targets: np.ndarray,
    probs: np.ndarray,
    paths: Sequence[str],
    skipped: Sequence[dict[str, str]] = (),
    *,
    resamples: int | None = None,
) -> MultiLabelEvaluation:
    """Scores and one prediction record per image from probabilities.

    Args:
        labels: label names, in column order.
        thresholds: per-label decision thresholds.
        targets: (images, labels) 0/1.
        probs: (images, labels) probabilities.
        paths: each image's path.
        skipped: images that could not be read.
        resamples: bootstrap resamples (default ``settings.BOOTSTRAP_RESAMPLES``).
    """
    targets = np.asarray(targets, np.float64)
    probs = np.asarray(probs, np.float64)
    given = probs >= np.asarray(thresholds)
    predictions: list[MultiLabelPrediction] = []
    for i, path in enumerate(paths):
        true = [labels[j] for j in np.flatnonzero(targets[i] > 0.5)]
        predicted = [labels[j] for j in np.flatnonzero(given[i])]
        predictions.append(
            {
                "path": path,
                "true": true,
                "predicted": predicted,
                "missed": [x for x in true if x not in predicted],
                "false": [x for x in predicted if x not in true],
                "probabilities": {name: float(probs[i, j]) for j, name in enumerate(labels)},
            }
        )
    extra = {} if resamples is None else {"resamples": resamples}  # (else the settings' default)
    return MultiLabelEvaluation(
        labels=list(labels),
        thresholds=[float(t) for t in thresholds],
        metrics=multilabel_metrics(targets, probs, list(labels), list(thresholds), **extra),
        num_images=len(paths),
        skipped=list(skipped),
        predictions=predictions,
        targets=targets,
        probs=probs,
    )


def evaluate_multilabel_items(
    predict: Callable[[np.ndarray], np.ndarray],
    labels: list[str],
    thresholds: list[float],
    image_size: int,
    data_dir: str | os.PathLike[str],
    items: Sequence[tuple[str, Sequence[str]]],
    skipped: Sequence[dict[str, str]] = (),
    progress: Callable[[int, int], None] | None = None,
) -> MultiLabelEvaluation:
    """Evaluate ``predict`` (uint8 RGB batch → per-label probabilities) on (relative path, labels).

    Raises:
        ValueError: labels the model does not know, or no image could be read.
    """
    unknown = sorted({x for _, item_labels in items for x in item_labels} - set(labels))
    if unknown:
        raise ValueError(
            f"labels not known to the model: {', '.join(unknown)} (it knows {', '.join(labels)})"
        )
    skipped = list(skipped)
    kept, sets, probs = [], [], []
    for start in range(0, len(items), BATCH):
        pixels = []
        for rel, item_labels in items[start : start + BATCH]:
            try:
                pixels.append(load_for_model(in_folder(Path(data_dir), rel), image_size))
            except (ImageProblem, OSError) as err:
                skipped.append({"path": rel, "reason": str(err)})
                continue
            kept.append(rel)
            sets.append(tuple(item_labels))
        if pixels:
            probs.append(np.asarray(predict(np.stack(pixels))))
        if progress is not None:
            progress(min(start + BATCH, len(items)), len(items))
    if not kept:
        raise ValueError("no usable images to evaluate")
    return summarize_multilabel(
        labels, thresholds, multi_hot(sets, labels), np.concatenate(probs), kept, skipped
    )
