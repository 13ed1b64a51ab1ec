"""Likely label errors of multi-label data: labels that look missing or wrong on an image, judged by the
one-vs-rest probe on the backbone's features, fitted on the other folds (iterative stratification).

cleanlab's multi-label functions do the judging: ``find_multilabel_issues_per_class`` (confident
learning per label, one-vs-rest) says which label of which image looks mislabelled, and
``multilabel_classification.rank.get_label_quality_scores`` orders the images, worst first. As for
single-label data, every image whose given labels the out-of-sample decisions (at 0.5) contradict is
listed too, and ``confident`` marks those cleanlab's filter flags.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from tlstudio.core.settings import BLAS_THREADS, SEED
from tlstudio.core.settings import LABEL_CHECK_FOLDS as FOLDS
from tlstudio.core.training.out_of_fold import out_of_fold
from tlstudio.core.training.probe_multilabel import fit_multilabel_probe, multilabel_folds

DECISION = 0.5
"""The out-of-sample probe's decision: a label is present at or above this probability."""


@dataclass(frozen=True)
class MultiLabelIssue:
    """An image whose labels are likely incomplete or wrong."""

    path: str  # relative to the CSV's folder
    given: tuple[str, ...]  # its labels now
    suggested: tuple[str, ...]  # ``given`` without ``wrong``, with ``missing``
    missing: tuple[str, ...]  # absent, yet the probe finds them (or cleanlab flags them)
    wrong: tuple[str, ...]  # present, yet the probe does not find them (or cleanlab flags them)
    probabilities: dict[str, float]  # the out-of-sample probability of each label in missing or wrong
    quality: float  # cleanlab's label quality score of the image (0: surely mislabelled … 1)
    confident: bool  # some label flagged by confident learning's filter (cleanlab)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (label sets as lists)."""
        return {
            "path": self.path,
            "given": list(self.given),
            "suggested": list(self.suggested),
            "missing": list(self.missing),
            "wrong": list(self.wrong),
            "probabilities": dict(self.probabilities),
            "quality": self.quality,
            "confident": self.confident,
        }


def out_of_sample_multilabel(
    features: np.ndarray,
    targets: np.ndarray,
    folds: int = FOLDS,
    seed: int = SEED,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Each image's per-label probabilities from a one-vs-rest probe fitted without it.

    Args:
        features: (n, d) backbone features.
        targets: (n, labels) 0/1 indicators.
        folds: how many folds (fewer when a label has fewer images), dealt by iterative stratification.
        seed: the fold assignment.
        stop: set to cancel between fits (``core.cancel.Cancelled``).
        progress: called with (fits done, fits in all) after each probe fit.

    Returns:
        (n, labels) independent probabilities.

    Raises:
        ValueError: a label on fewer than 2 images (nothing to hold out).
    """
    y = (np.asarray(targets) > 0.5).astype(np.float64)
    fold_of = multilabel_folds(y, folds, seed)
    if fold_of is None:
        raise ValueError("every label needs at least 2 images to judge labels out of sample")
    return out_of_fold(
        lambda x, t, **options: fit_multilabel_probe(x, t, seed=seed, **options),
        features,
        y,
        fold_of,
        y.shape[1],
        stop=stop,
        progress=progress,
    )


def rank_multilabel_issues(
    targets: np.ndarray, probs: np.ndarray, paths: list[str], labels: list[str]
) -> list[MultiLabelIssue]:
    """The images with a label that looks missing or wrong, worst first (cleanlab's label quality score).

    A label looks wrong on an image when cleanlab's per-label filter flags it, or when the out-of-sample
    decision at ``DECISION`` disagrees with it.

    Args:
        targets: (n, labels) the given 0/1 indicators.
        probs: (n, labels) out-of-sample probabilities.
        paths: each image's path.
        labels: the label names, in column order.

    Returns:
        The issues, lowest quality first.
    """
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    given = np.asarray(targets) > 0.5
    lists = [[int(k) for k in np.flatnonzero(row)] for row in given]
    # n_jobs=1: inside TensorFlow's (and Qt's) process a forked pool costs more than the work
    with threadpool_limits(limits=BLAS_THREADS):
        quality = get_label_quality_scores(lists, probs)
        per_label = find_multilabel_issues_per_class(lists, probs, n_jobs=1)
    flagged = np.asarray(per_label, bool)  # (n, labels): cleanlab 2.9 returns one array, not a list
    if flagged.shape != given.shape:  # its docstring says a list of per-label masks
        flagged = np.stack([np.asarray(mask, bool) for mask in per_label], axis=1)
    suspect = flagged | ((probs >= DECISION) != given)
    issues = []
    for i in sorted(np.flatnonzero(suspect.any(1)), key=lambda j: (quality[j], paths[j])):
        missing = [k for k in np.flatnonzero(suspect[i]) if not given[i, k]]
        wrong = [k for k in np.flatnonzero(suspect[i]) if given[i, k]]
        now = set(np.flatnonzero(given[i])) - set(wrong) | set(missing)
        issues.append(
            MultiLabelIssue(
                paths[i],
                tuple(labels[k] for k in np.flatnonzero(given[i])),
                tuple(labels[k] for k in sorted(now)),
                tuple(labels[k] for k in missing),
                tuple(labels[k] for k in wrong),
                {labels[k]: round(float(probs[i, k]), 4) for k in (*missing, *wrong)},
                round(float(quality[i]), 4),
                bool(flagged[i].any()),
            )
        )
    return issues
