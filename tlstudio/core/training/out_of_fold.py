"""Out-of-fold probabilities of a probe: each image scored by a probe fitted without its fold, the
regularisation chosen once on all images (the label check's single- and multi-label paths share it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tlstudio.core.cancel import StopToken, check


def out_of_fold(
    fit: Callable[..., Any],
    features: np.ndarray,
    targets: np.ndarray,
    fold_of: np.ndarray,
    width: int,
    *,
    stop: StopToken | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Each image's probabilities from a probe fitted on the other folds.

    Args:
        fit: ``fit(features, targets, **options)`` returns a fitted probe (``.l2``, ``.predict_proba``);
            it is given ``progress=`` for the choice of L2, then ``l2_grid=(l2,), folds=0`` per fold.
        features: (n, d) backbone features.
        targets: what ``fit`` takes for those images.
        fold_of: (n,) each image's fold.
        width: the probabilities' columns.
        stop: set to cancel between fits (``core.cancel.Cancelled``).
        progress: called with (fits done, fits in all) after each probe fit.

    Returns:
        (n, width) probabilities.
    """
    count = int(fold_of.max()) + 1
    first = [0]  # fits of the regularisation's choice, as the probe counts them

    def chosen(done: int, total: int) -> None:
        first[0] = total
        check(stop, "label check cancelled")
        if progress is not None:
            progress(done, total + count)

    l2 = fit(features, targets, progress=chosen).l2
    probs = np.zeros((len(features), width), np.float64)
    for k in range(count):
        check(stop, "label check cancelled")
        held = fold_of == k
        probe = fit(features[~held], targets[~held], l2_grid=(l2,), folds=0)
        probs[held] = probe.predict_proba(features[held])
        if progress is not None:
            progress(first[0] + k + 1, first[0] + count)
    return probs
