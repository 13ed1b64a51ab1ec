"""Is one run really better than another? Test accuracies with their intervals, and a verdict.

Two runs tested on the same images are compared image by image: McNemar's exact test (a two-sided
binomial test on the discordant pairs — the images exactly one of the two runs got right) says how
likely a difference that large is when the runs are equally good. At ``ALPHA`` (5%) or less, the run
right more often is called better; otherwise it is a tie: these test images cannot tell them apart.

Runs tested on different data (their split manifests differ), or without per-image predictions,
cannot be paired: then only their 95% Wilson intervals are compared, and intervals that overlap mean
"cannot tell" (separate intervals are a conservative sign of a real difference).

Pure data in and out: a run's ``evaluation.json`` predictions (``{"path", "true", "predicted", ...}``)
and its ``metrics.json``; the readers of run folders (``run_history``) call these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from tlstudio.core.results.intervals import wilson_interval

ALPHA = 0.05  # the paired test's level: p below it calls a difference real

Outcome = Literal["better", "tie", "cannot tell"]


@dataclass(frozen=True)
class EvaluatedRun:
    """What a run says about its test split: its name, its data and its per-image predictions.

    Attributes:
        name: what tables call the run (its folder name, a candidate's name).
        metrics: its ``metrics.json`` (``test_accuracy``, ``test_images``, its interval).
        predictions: the prediction records of ``evaluation.json``; None when the run has none.
        fingerprint: its split manifest's fingerprint; None when it does not say.
    """

    name: str
    metrics: dict[str, object]
    predictions: list[dict[str, object]] | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class Scored:
    """One run's test accuracy with its 95% Wilson interval (None where it has no test score)."""

    name: str
    accuracy: float | None
    low: float | None
    high: float | None
    images: int

    @property
    def interval(self) -> str:
        """``"0.58–0.78"``, or ``"—"`` without a score."""
        return "—" if self.low is None or self.high is None else f"{self.low:.2f}–{self.high:.2f}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """Whether ``a`` and ``b`` differ, and how that was decided.

    Attributes:
        a, b: the two runs' names.
        outcome: ``better`` (``winner`` is right more often, beyond chance), ``tie`` (paired, the
            test images cannot tell them apart) or ``cannot tell`` (not paired and the intervals
            overlap, or a run has no test score).
        winner: the better run's name for ``better``, else None.
        paired: whether the verdict compares the same test images one by one.
        test: ``McNemar exact``, ``95% intervals`` or ``none``.
        p_value: the paired test's p-value; None when not paired.
        images: the paired test images (0 when not paired).
        a_only, b_only: images only ``a`` / only ``b`` got right (paired only).
        reason: why the comparison is not paired ("" when it is).
    """

    a: str
    b: str
    outcome: Outcome
    winner: str | None
    paired: bool
    test: str
    p_value: float | None = None
    images: int = 0
    a_only: int = 0
    b_only: int = 0
    reason: str = ""
    intervals: tuple[str, str] = ("—", "—")

    @property
    def loser(self) -> str | None:
        """The other run when there is a winner."""
        if self.winner is None:
            return None
        return self.b if self.winner == self.a else self.a

    @property
    def text(self) -> str:
        """One line for a person, e.g. ``transfer better than baseline: p=0.03 (McNemar, 19 paired
        test images; transfer alone right on 6, baseline alone on 0)``."""
        if self.paired:
            how = (
                f"p={_p(self.p_value)} (McNemar, {self.images} paired test images; "
                f"{self.a} alone right on {self.a_only}, {self.b} alone on {self.b_only})"
            )
            if self.outcome == "better":
                return f"{self.winner} better than {self.loser}: {how}"
            return f"tie: {self.a} and {self.b} cannot be told apart on these test images, {how}"
        spans = f"95% intervals {self.intervals[0]} ({self.a}) and {self.intervals[1]} ({self.b})"
        if self.outcome == "better":
            return (
                f"{self.winner} better than {self.loser}: {spans} do not overlap; not paired: " + self.reason
            )
        if self.test == "none":
            return f"cannot tell: {self.reason}"
        return f"cannot tell: {spans} overlap; not paired: {self.reason}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, with the sentence under ``text``."""
        data = asdict(self)
        data["intervals"] = list(self.intervals)
        data["text"] = self.text
        return data


def correct_by_image(predictions: list[dict[str, object]]) -> dict[str, tuple[str, bool]]:
    """Each test image's true class and whether the run got it right, by path."""
    return {str(p["path"]): (str(p["true"]), p["true"] == p["predicted"]) for p in predictions}


def score(run: EvaluatedRun) -> Scored:
    """A run's test accuracy and 95% Wilson interval: counted from its predictions when it has
    them, else read from its metrics (the interval recomputed when only the image count is there)."""
    if run.predictions:
        outcomes = correct_by_image(run.predictions)
        right, n = sum(ok for _, ok in outcomes.values()), len(outcomes)
        low, high = wilson_interval(right, n)
        return Scored(run.name, right / n, low, high, n)
    m = run.metrics
    accuracy = m.get("test_accuracy")
    if not isinstance(accuracy, (int, float)):
        return Scored(run.name, None, None, None, 0)
    n = m.get("test_images")
    n = int(n) if isinstance(n, (int, float)) else 0
    low, high = m.get("test_accuracy_low"), m.get("test_accuracy_high")
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float))):
        low, high = wilson_interval(round(float(accuracy) * n), n) if n else (None, None)
    return Scored(run.name, float(accuracy), low, high, n)


def mcnemar(a_right: list[bool], b_right: list[bool]) -> tuple[int, int, float]:
    """McNemar's exact test on paired outcomes.

    Args:
        a_right, b_right: whether each run got each image right, in the same image order.

    Returns:
        (images only a got right, images only b got right, two-sided p-value); p is 1 when no image
        separates them.
    """
    from scipy.stats import binomtest

    a_only = sum(1 for x, y in zip(a_right, b_right, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a_right, b_right, strict=True) if y and not x)
    if a_only + b_only == 0:
        return 0, 0, 1.0
    return a_only, b_only, float(binomtest(a_only, a_only + b_only, 0.5).pvalue)


def compare_pair(a: EvaluatedRun, b: EvaluatedRun, alpha: float = ALPHA) -> Verdict:
    """The verdict on two runs: paired on their common test images when they were tested on the
    same data with per-image predictions, else by their intervals.

    Args:
        a, b: the runs.
        alpha: the paired test's level.

    Returns:
        The verdict (``Verdict.text`` is the line to show).

    Example:
        >>> compare_pair(transfer, baseline).text
        'transfer better than baseline: p=0.031 (McNemar, 19 paired test images; ...)'
    """
    sa, sb = score(a), score(b)
    names = {"a": a.name, "b": b.name, "intervals": (sa.interval, sb.interval)}
    reason = _unpaired_reason(a, b)
    if not reason:
        ca, cb = correct_by_image(a.predictions or []), correct_by_image(b.predictions or [])
        common = sorted(set(ca) & set(cb))
        a_only, b_only, p = mcnemar([ca[k][1] for k in common], [cb[k][1] for k in common])
        real = p < alpha
        return Verdict(
            **names,
            outcome="better" if real else "tie",
            winner=(a.name if a_only > b_only else b.name) if real else None,
            paired=True,
            test="McNemar exact",
            p_value=p,
            images=len(common),
            a_only=a_only,
            b_only=b_only,
        )
    if sa.low is None or sb.low is None:
        missing = a.name if sa.low is None else b.name
        return Verdict(**names, outcome="cannot tell", winner=None, paired=False, test="none",
                       reason=f"{missing} has no test score")  # fmt: skip
    apart = sa.low > sb.high or sb.low > sa.high
    return Verdict(
        **names,
        outcome="better" if apart else "cannot tell",
        winner=(a.name if sa.low > sb.high else b.name) if apart else None,
        paired=False,
        test="95% intervals",
        reason=reason,
    )


def against_best(runs: list[EvaluatedRun], alpha: float = ALPHA) -> list[Verdict]:
    """Every other run compared with the one of highest test accuracy (the first of equals), best
    first in each verdict; runs without a test score are compared too (``cannot tell``).

    Returns:
        One verdict per other run, in the runs' order; [] for fewer than two runs.
    """
    if len(runs) < 2:
        return []
    scores = [score(r).accuracy for r in runs]
    best = max(range(len(runs)), key=lambda i: (scores[i] is not None, scores[i] or 0.0, -i))
    return [compare_pair(runs[best], r, alpha) for i, r in enumerate(runs) if i != best]


def _unpaired_reason(a: EvaluatedRun, b: EvaluatedRun) -> str:
    """Why two runs cannot be compared image by image ("" when they can)."""
    if a.fingerprint is not None and b.fingerprint is not None and a.fingerprint != b.fingerprint:
        return "the runs were trained and tested on different data (their split manifests differ)"
    if not a.predictions or not b.predictions:
        missing = a.name if not a.predictions else b.name
        return f"{missing} has no per-image test predictions"
    ca, cb = correct_by_image(a.predictions), correct_by_image(b.predictions)
    common = set(ca) & set(cb)
    if not common:
        return "the runs share no test image"
    if any(ca[k][0] != cb[k][0] for k in common):
        return "their test images carry different labels"
    if len(common) < max(len(ca), len(cb)) / 2:
        return "the runs share fewer than half of their test images"
    return ""


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"
