"""A candidate backbone's scores on multi-label data, read from its features of the training split.

The same three scores as for single-label data (``ranking``), each scored by macro mAP (average
precision per label, averaged over the labels) instead of accuracy:

- ``linear_probe``: every image's label probabilities from the one-vs-rest probe the recipe fits
  (``probe_multilabel``), fitted on the other folds (iterative stratification): the macro mAP a
  frozen-backbone model would reach, and the score the ranking is ordered by;
- ``knn``: each label's score is the share of the image's 10 nearest other images (cosine) that carry
  it, nearer ones weighing a little more;
- ``logme``: LogME with each label's 0/1 indicator as a target.

Intervals are 95% percentile bootstraps over the images (the ranking's paired draws), LogME's the
delete-d jackknife. A candidate is tied with the best when the paired bootstrap's 2.5th percentile of
the difference of their macro mAP is at most 0: the single-label rule, on macro mAP.
"""

from __future__ import annotations

import threading

import numpy as np

from tlstudio.core.cancel import Cancelled
from tlstudio.core.results.multilabel_metrics import average_precision
from tlstudio.core.training.label_issues import FOLDS, nearest_others
from tlstudio.core.training.probe_multilabel import fit_multilabel_probe, multilabel_folds


def macro_map(targets: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision per label, averaged over the labels with a positive (None: none has one)."""
    aps = [average_precision(targets[:, j], scores[:, j]) for j in range(targets.shape[1])]
    defined = [ap for ap in aps if ap is not None]
    return float(np.mean(defined)) if defined else None


def out_of_sample_label_probabilities(
    features: np.ndarray,
    targets: np.ndarray,
    folds: int = FOLDS,
    seed: int = 0,
    stop: threading.Event | None = None,
) -> np.ndarray:
    """Each image's label probabilities from a one-vs-rest probe fitted without it.

    Args:
        features: (n, d) backbone features.
        targets: (n, labels) 0/1.
        folds: how many folds (fewer when a label has fewer images).
        seed: the fold assignment.
        stop: set to cancel between fits (``core.cancel.Cancelled``).

    Returns:
        (n, labels) probabilities.

    Raises:
        ValueError: a label on fewer than 2 images (nothing to hold out).
    """
    fold_of = multilabel_folds(targets, folds, seed)
    if fold_of is None:
        raise ValueError("every label needs at least 2 training images to be scored out of sample")
    l2 = fit_multilabel_probe(features, targets, seed=seed).l2  # chosen once; each fold refits with it
    probs = np.zeros(np.shape(targets), np.float64)
    for k in range(int(fold_of.max()) + 1):
        if stop is not None and stop.is_set():
            raise Cancelled("rank cancelled")
        held = fold_of == k
        probe = fit_multilabel_probe(features[~held], targets[~held], l2_grid=(l2,), folds=0, seed=seed)
        probs[held] = probe.predict_proba(features[held])
    return probs


def knn_label_scores(features: np.ndarray, targets: np.ndarray, k: int = 10) -> np.ndarray:
    """(n, labels): the weighted share of each image's k nearest other images carrying each label."""
    _, index = nearest_others(features, k)
    k = index.shape[1]
    weights = 1.0 + (k - np.arange(k)) * 1e-3  # nearer neighbours weigh a little more: fewer ties
    return np.einsum("nkl,k->nl", np.asarray(targets, np.float64)[index], weights) / weights.sum()


def bootstrap_interval(targets: np.ndarray, scores: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of the macro mAP over the drawn resamples of the images."""
    values = [v for d in draws if (v := macro_map(targets[d], scores[d])) is not None]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def tied_on_macro_map(targets: np.ndarray, best: np.ndarray, other: np.ndarray, draws: np.ndarray) -> bool:
    """Whether a paired bootstrap cannot tell ``other``'s macro mAP from ``best``'s: the 2.5th
    percentile of the difference over the resamples is at most 0 (``metrics.tied_by_bootstrap``'s rule).

    Args:
        targets: (n, labels) 0/1.
        best: (n, labels) the best candidate's out-of-sample scores.
        other: the same images' scores of another candidate.
        draws: (resamples, n) indices drawn with replacement.
    """
    differences = []
    for d in draws:
        a, b = macro_map(targets[d], best[d]), macro_map(targets[d], other[d])
        if a is not None and b is not None:
            differences.append(a - b)
    return bool(np.percentile(differences, 2.5) <= 0.0)
