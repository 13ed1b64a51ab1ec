"""Intervals and chance tests on counts, in plain Python (no NumPy: the window's start-up path uses them)."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # it always holds p; min/max keep it so where rounding does not (272 of 272: 1 - 1e-16 < 1)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def within_chance(accuracy: float, n: int, class_counts: list[int], alpha: float = 0.05) -> bool:
    """Whether an accuracy on ``n`` images is no better than always answering the largest class.

    The exact one-sided binomial test (``scipy.stats.binomtest``): the run beat chance only when
    ``accuracy × n`` correct answers or more would happen with probability below ``alpha`` to a
    model that answers right at the largest class's rate. The normal approximation this replaced
    called 9 of 12 (p = 0.073) and 14 of 20 (p = 0.058) against a rate of one half better than chance.

    Args:
        accuracy: the share answered right (rounded to a count of ``n``).
        n: how many images it was measured on.
        class_counts: images per class of those ``n`` (the largest sets the chance rate).
        alpha: the test's level.

    Returns:
        True when the test cannot tell the accuracy from chance; False for no images.

    Example:
        >>> within_chance(9 / 12, 12, [6, 6]), within_chance(10 / 12, 12, [6, 6])
        (True, False)
    """
    if n <= 0 or not class_counts:
        return False
    from scipy.stats import binomtest  # (SciPy loads in a fraction of a second, only when a run ends)

    chance = max(class_counts) / max(sum(class_counts), 1)
    correct = min(n, max(0, round(accuracy * n)))
    return bool(binomtest(correct, n, chance, alternative="greater").pvalue >= alpha)
