"""What to label next for a multi-label run: unlabelled images ranked by how close their labels' probabilities
lie to the run's per-label decision thresholds, then spread over the backbone's features.

Each label's uncertainty is 1 at its threshold and falls linearly to 0 at the sure end on that side
(0 or 1); an image's uncertainty is the mean over the labels (the label decisions the model is least
sure of, taken together). ``label_next.suggest`` picks with these scores and the single-label diversity
step (``select_to_label``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlstudio.core.results import run_folder as files


@dataclass(frozen=True)
class LabelSuggestion:
    """An unlabelled image worth labelling, and what a multi-label run thinks of it now."""

    path: str  # relative to the unlabelled folder
    predicted: tuple[str, ...]  # the labels at or above their thresholds
    probabilities: dict[str, float]  # every label's probability
    least_sure: str  # the label whose probability lies closest to its threshold
    uncertainty: float  # mean over labels of the closeness to the threshold (1: on it, 0: sure)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "predicted": list(self.predicted),
            "probabilities": dict(self.probabilities),
            "least_sure": self.least_sure,
            "uncertainty": self.uncertainty,
        }


def run_thresholds(run_dir: str | os.PathLike[str], labels: list[str]) -> np.ndarray:
    """The run's per-label decision thresholds (``thresholds.json``; 0.5 for a label it lacks).

    Args:
        run_dir: the run folder.
        labels: the label names, in output order.

    Returns:
        (labels,) thresholds.
    """
    path = Path(run_dir) / files.THRESHOLDS
    named = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return np.array([float(named.get(label, 0.5)) for label in labels], np.float64)


def label_closeness(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per image and label: 1 − |p − t| / (the distance from t to the sure end on p's side), in [0, 1].

    Args:
        probs: (m, labels) probabilities.
        thresholds: (labels,) decision thresholds in (0, 1).

    Returns:
        (m, labels) closeness to the threshold (1: on it, 0: probability 0 or 1).
    """
    t = np.clip(np.asarray(thresholds, np.float64), 1e-6, 1 - 1e-6)
    room = np.where(probs < t, t, 1.0 - t)
    return np.clip(1.0 - np.abs(probs - t) / room, 0.0, 1.0)


def label_uncertainty(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(m,) each image's mean ``label_closeness`` over the labels."""
    return label_closeness(probs, thresholds).mean(axis=1)


def describe(path: str, probs: np.ndarray, labels: list[str], thresholds: np.ndarray) -> LabelSuggestion:
    """One image's suggestion.

    Args:
        path: the image's path.
        probs: (labels,) the run's probabilities of it.
        labels: the label names, in output order.
        thresholds: (labels,) the run's decision thresholds.

    Returns:
        What the run sees in it, and how unsure it is.
    """
    close = label_closeness(probs[None, :], thresholds)[0]
    return LabelSuggestion(
        path,
        tuple(label for k, label in enumerate(labels) if probs[k] >= thresholds[k]),
        {label: round(float(probs[k]), 4) for k, label in enumerate(labels)},
        labels[int(np.argmax(close))],
        round(float(close.mean()), 4),
    )
