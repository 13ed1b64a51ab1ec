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


def confident_images(
    paths: list[str], probs: np.ndarray, labels: list[str], thresholds: np.ndarray, min_confidence: float
) -> list[LabelSuggestion]:
    """Candidates for pseudo-labels: images where the run is sure of every label, surest first.

    A label is sure when its ``label_closeness`` is at most 1 − ``min_confidence``: at 0.95, its
    probability lies in the last 5 % of the way from its threshold to 1 (the label is given) or to 0
    (it is not). An image qualifies only when every label is sure, its labels being those given.

    Args:
        paths: each image's path (relative to the unlabelled folder).
        probs: (m, labels) the run's probabilities.
        labels: the label names, in output order.
        thresholds: (labels,) the run's decision thresholds.
        min_confidence: in [0.5, 1].

    Returns:
        The images, the least close label first ranked lowest (surest first).
    """
    close = label_closeness(np.asarray(probs, np.float64), thresholds)
    worst = close.max(axis=1) if close.size else np.zeros(len(paths))
    sure = [int(i) for i in np.argsort(worst, kind="stable") if worst[i] <= 1.0 - min_confidence]
    return [describe(paths[i], probs[i], labels, thresholds) for i in sure]


def copy_pseudo_label_rows(
    csv_path: str | os.PathLike[str], unlabelled_dir: str | os.PathLike[str], confident: list[LabelSuggestion]
) -> list[str]:
    """Copy each confident image into ``PSEUDO_FOLDER/`` beside the labels CSV and list it there with
    the labels the run gives it; the split keeps those rows (and their look-alikes) in train.

    The copies are made first, then the CSV is written once, atomically: a kill before that leaves
    unlisted copies (unused; a later call copies under a free name) and the old CSV. An image whose
    bytes a listed pseudo-label already has is not copied again.

    Args:
        csv_path: the labels CSV the run was trained on.
        unlabelled_dir: where the images are.
        confident: ``Suggestions.confident`` of a multi-label run (or a part of it).

    Returns:
        The new rows' paths, relative to the CSV's folder.

    Raises:
        RelabelError: the CSV cannot be read or written, or a label cannot be written (nothing listed).
    """
    import shutil

    from tlstudio.core.data.labels_csv import LabelsCsvError, read_labels_csv, write_labels_csv
    from tlstudio.core.data.relabel import RelabelError, free_name
    from tlstudio.core.data.scan import file_sha256, in_folder
    from tlstudio.core.settings import PSEUDO_FOLDER

    root = Path(csv_path).parent
    try:
        rows = list(read_labels_csv(csv_path, check_files=False, training=False).rows)
    except LabelsCsvError as err:
        raise RelabelError(str(err)) from err
    listed = {
        file_sha256(in_folder(root, path))
        for path, _ in rows
        if path.split("/")[0] == PSEUDO_FOLDER and in_folder(root, path).is_file()
    }
    added: list[tuple[str, tuple[str, ...]]] = []
    try:
        for s in confident:
            source = in_folder(unlabelled_dir, s.path)
            digest = file_sha256(source)
            if digest in listed:
                continue
            (root / PSEUDO_FOLDER).mkdir(exist_ok=True)
            copy = free_name(root / PSEUDO_FOLDER / Path(s.path).name)
            shutil.copy2(source, copy)
            added.append((f"{PSEUDO_FOLDER}/{copy.name}", tuple(sorted(s.predicted))))
            listed.add(digest)
        if added:
            write_labels_csv(csv_path, [*rows, *added])
    except OSError as err:
        for rel, _ in added:
            in_folder(root, rel).unlink(missing_ok=True)
        raise RelabelError(f"could not add the pseudo-labels to {csv_path}: {err.strerror or err}") from err
    return [rel for rel, _ in added]
