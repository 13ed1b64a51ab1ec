"""Rank candidate backbones on the user's own data before training any of them.

Each candidate's features of the training split are computed once; three scores are read from them:

- ``linear_probe``: the accuracy of the recipe's phase-1 probe, cross-validated (every image scored
  by a probe fitted without it): the estimated accuracy of a frozen-backbone model, and the score
  the ranking is ordered by;
- ``knn``: leave-one-out accuracy of a 10-nearest-neighbour vote (cosine);
- ``logme``: LogME (You et al., ICML 2021), the log marginal evidence of a Bayesian linear model
  from the features to each class's one-hot target, per image, averaged over classes — written
  from the paper (evidence maximisation by the fixed-point updates of α and β on the
  eigendecomposition of FᵀF).

Intervals are 95 %: Wilson intervals for the accuracies; for LogME a delete-d jackknife (subsamples
of 80 % of the images without replacement: a bootstrap's repeated rows would inflate the evidence).
Candidates whose probe accuracy differs from the best one's by an amount a paired bootstrap
cannot tell from zero are marked ``tied_with_best``: the data cannot separate them.

Multi-label data (a labels CSV, ``DatasetReport.task``) is scored the same way by macro mAP instead
of accuracy (``ranking_multilabel``): each row's ``metric`` says which.

Every candidate is checked before any is built (``rank_check``): a bad one stops the ranking at once
with all the reasons (``CandidateProblems``). A candidate that fails during its work (a model file
Keras cannot load, memory) is kept as a row with its ``error``, after the others, which are ranked.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from tlstudio.core.backbone.sources import BackboneError
from tlstudio.core.cancel import Cancelled
from tlstudio.core.data.health import DatasetReport
from tlstudio.core.data.split import SplitConfig, make_split
from tlstudio.core.results.metrics import tied_by_bootstrap, wilson_interval
from tlstudio.core.settings import SEED
from tlstudio.core.training.label_issues import image_features, nearest_others, out_of_sample_probabilities
from tlstudio.core.training.rank_check import CandidateProblems, candidate_problems, fetch_candidate_weights

NEIGHBOURS = 10
BOOTSTRAP = 200  # paired draws for "tied with the best"
LOGME_DRAWS = 20  # subsamples for LogME's interval (each refits LogME)
LOGME_KEEP = 0.8  # each subsample keeps this share of the images, drawn without replacement


@dataclass(frozen=True)
class RankedBackbone:
    """One candidate's scores on the data, and what it costs."""

    backbone: str
    score: float  # the linear probe's cross-validated accuracy: a frozen-backbone model's, estimated
    interval: tuple[float, float]
    knn: float
    knn_interval: tuple[float, float]
    logme: float
    logme_interval: tuple[float, float]
    tied_with_best: bool
    parameters: int
    feature_dim: int
    image_size: int
    images: int  # the training images scored
    seconds: float  # computing the features and the scores
    ms_per_image: float  # the forward pass alone, per image (batches of 32, this machine)
    peak_memory_mb: float | None  # the process's peak resident memory so far (cumulative)
    error: str | None = None  # why this candidate failed during its work (its scores are then NaN)
    metric: str = "accuracy"  # what score, interval and knn measure: "accuracy", or "macro_map"

    @classmethod
    def failed(cls, backbone: str, error: str, images: int, seconds: float) -> RankedBackbone:
        """The row of a candidate that failed during its work: its reason, no scores."""
        nan = float("nan")
        return cls(
            backbone, nan, (nan, nan), nan, (nan, nan), nan, (nan, nan), False, 0, 0, 0, images,
            round(seconds, 2), nan, _peak_memory_mb(), error=error,
        )  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (a failed candidate: its name, its error, the images and the seconds)."""
        if self.error is not None:
            return {
                "backbone": self.backbone,
                "error": self.error,
                "images": self.images,
                "seconds": self.seconds,
            }
        data = asdict(self)
        for key in ("interval", "knn_interval", "logme_interval"):
            data[key] = list(data[key])
        return data


def knn_correct(features: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Whether each image's k nearest other images (cosine) vote for its class (ties: the nearest)."""
    _, index = nearest_others(features, k)
    neighbours = labels[index]
    k = neighbours.shape[1]
    num_classes = int(labels.max()) + 1
    votes = np.zeros((len(labels), num_classes))
    for rank in range(k):  # nearer neighbours weigh a little more, which breaks ties
        np.add.at(votes, (np.arange(len(labels)), neighbours[:, rank]), 1.0 + (k - rank) * 1e-3)
    return votes.argmax(1) == labels


def logme(features: np.ndarray, labels: np.ndarray, max_iter: int = 11) -> float:
    """LogME of features for class labels (higher is better; per image, averaged over classes).

    Args:
        features: (n, d) features.
        labels: (n,) class indices; or (n, labels) 0/1 indicators of multi-label data, each label
            a target of its own (as the paper treats any multi-output target).
        max_iter: fixed-point iterations per class (the paper's code uses 11).

    Returns:
        The mean over classes (or labels with an image) of the maximised log evidence divided by n.
    """
    if np.ndim(labels) == 2:
        targets = np.asarray(labels, np.float64)
        targets = targets[:, targets.any(0)]  # (a subsample may miss a rare label)
    else:  # (a bootstrap draw may miss a small class)
        targets = (np.asarray(labels)[:, None] == np.unique(labels)[None, :]).astype(np.float64)
    f = np.asarray(features, np.float64)
    n, d = f.shape
    if n < d:  # FᵀF's nonzero eigenpairs from the smaller F Fᵀ (the rest are zero)
        s, u = np.linalg.eigh(f @ f.T)
        keep = s > 1e-10 * max(float(s.max()), 1e-300)
        s = s[keep]
        v = (f.T @ u[:, keep]) / np.sqrt(s)
    else:  # FᵀF = V diag(s) Vᵀ
        s, v = np.linalg.eigh(f.T @ f)
        s = np.clip(s, 0.0, None)
    zero = d - len(s)  # eigenvalues of FᵀF that are 0: each adds log α to log|A|
    evidences = []
    for y in targets.T:
        projected = v.T @ (f.T @ y)  # Vᵀ Fᵀ y
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            gamma = float((beta * s / (alpha + beta * s)).sum())
            m = v @ (beta * projected / (alpha + beta * s))  # posterior mean of the weights
            m2 = float(m @ m)
            residual = float(((y - f @ m) ** 2).sum())
            new_alpha = gamma / (m2 + 1e-10)
            new_beta = (n - gamma) / (residual + 1e-10)
            if not (new_alpha > 0 and new_beta > 0 and np.isfinite(new_alpha * new_beta)):
                break  # degenerate features (all zero, say): keep the last finite estimate
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if done:
                break
        m = v @ (beta * projected / (alpha + beta * s))
        m2, residual = float(m @ m), float(((y - f @ m) ** 2).sum())
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * (np.sum(np.log(alpha + beta * s)) + zero * np.log(alpha))
            - beta / 2 * residual
            - alpha / 2 * m2
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def rank_backbones(
    report: DatasetReport,
    backbones: list[str],
    *,
    weights: str = "imagenet",
    image_size: int | None = None,
    split: SplitConfig | None = None,
    seed: int = SEED,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
    counted: Callable[[int, int], None] | None = None,
) -> list[RankedBackbone]:
    """Score each candidate backbone on the training split of a scanned folder (or labels CSV), best first.

    Args:
        report: the dataset doctor's report (usable).
        backbones: names or files, as for training.
        weights: their weights (``imagenet``; a model file always uses its own).
        image_size: input size for all (default: each backbone's own).
        split: the split (default: the project defaults); only its training images are used.
        seed: folds and bootstrap.
        stop: set to cancel (``core.cancel.Cancelled``).
        progress: told each step in words.
        counted: told ``(images done, images)`` while a candidate's features are computed (a bar).

    Returns:
        The ranked candidates, best estimated accuracy (multi-label: macro mAP) first, then those that
        failed during their work, in the given order, each with its ``error`` (all of them when none
        could be ranked).

    Raises:
        CandidateProblems: candidates that cannot be ranked (unknown, broken, weights not to be had),
            all of them, found before any candidate is built.
        ValueError: a class (or label) with too few training images.
    """
    say = progress or (lambda _: None)
    multi = report.task == "multi_label"
    manifest = make_split(report.images, split or SplitConfig(), multi_label=multi)
    train_paths = {e.path for e in manifest.subset("train")}
    images = [r for r in report.images if r.path in train_paths]
    per_class = Counter(x for r in images for x in (r.label.split(";") if multi and r.label else [r.label]))
    small = min(report.classes, key=lambda c: per_class[c])
    if per_class[small] < 2:  # said before any backbone is built
        kind = "label" if multi else "class"
        raise ValueError(
            f"{kind} '{small}' has {per_class[small]} image(s) in the training split: ranking needs at "
            f"least 2 per {kind} (the probe is scored on images it did not see); add images, or lower "
            "--val/--test"
        )
    say(f"checking the {len(backbones)} candidates")
    problems = candidate_problems(backbones, weights=weights, image_size=image_size)
    if problems:  # every bad candidate at once, before any is built
        raise CandidateProblems(problems)
    problems = fetch_candidate_weights(
        backbones, weights=weights, image_size=image_size, stop=stop, progress=say
    )
    if problems:
        raise CandidateProblems(problems)
    rng = np.random.default_rng(seed)
    draws = np.array([rng.integers(0, len(images), len(images)) for _ in range(BOOTSTRAP)])
    ranked, failed, correct = [], [], {}
    for name in backbones:
        if stop is not None and stop.is_set():
            raise Cancelled("rank cancelled")
        started = time.perf_counter()
        try:
            row, correct[name] = _score(
                report, name, images, weights, image_size, seed, rng, stop, say, counted, draws
            )
        except Cancelled:
            raise
        except Exception as err:  # this candidate only: the others' rows are kept
            reason = failure_reason(err)
            say(f"{name} failed ({reason}); going on with the others")
            failed.append(RankedBackbone.failed(name, reason, len(images), time.perf_counter() - started))
            continue
        ranked.append(replace(row, seconds=round(time.perf_counter() - started, 2)))
    if not ranked:
        return failed
    if multi:
        from tlstudio.core.training.ranking_multilabel import macro_map, tied_on_macro_map

        ranked.sort(key=lambda r: (-(macro_map(*correct[r.backbone]) or 0.0), -r.logme))
        targets, best_scores = correct[ranked[0].backbone]
        return [
            replace(r, tied_with_best=tied_on_macro_map(targets, best_scores, correct[r.backbone][1], draws))
            for r in ranked
        ] + failed
    ranked.sort(key=lambda r: (-float(correct[r.backbone].mean()), -r.logme))
    best = correct[ranked[0].backbone].astype(float)
    return [
        replace(r, tied_with_best=tied_by_bootstrap(best, correct[r.backbone], draws)) for r in ranked
    ] + failed


def failure_reason(err: Exception) -> str:
    """A failed candidate's reason in one line: our own errors' words, anything else with its type."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, (BackboneError, ValueError)) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _score(
    report, name, images, weights, image_size, seed, rng, stop, say, counted=None, draws=None
) -> tuple[RankedBackbone, Any]:
    """One candidate's row (``seconds`` left for the caller) and which images its probe got right
    (multi-label: the labels and the probe's out-of-sample scores, for the paired bootstrap)."""
    say(f"{name}: features of {len(images)} training images")
    facts: dict[str, object] = {}
    features, labels, classes = image_features(
        report,
        name,
        weights=weights,
        image_size=image_size,
        stop=stop,
        images=images,
        facts=facts,
        progress=counted,
    )
    say(f"{name}: probe, nearest neighbours and LogME")
    if labels.ndim == 2:  # multi-label
        return _score_multilabel(name, features, labels, facts, images, seed, rng, stop, draws)
    probe_ok = out_of_sample_probabilities(features, labels, len(classes), seed=seed).argmax(1) == labels
    knn_ok = knn_correct(features, labels)
    score = logme(features, labels)
    row = _row(
        name,
        features,
        facts,
        images,
        score=round(float(probe_ok.mean()), 4),
        interval=_rounded(wilson_interval(int(probe_ok.sum()), len(probe_ok))),
        knn=round(float(knn_ok.mean()), 4),
        knn_interval=_rounded(wilson_interval(int(knn_ok.sum()), len(knn_ok))),
        logme=round(score, 4),
        logme_interval=_rounded(_logme_interval(features, labels, score, rng)),
    )
    return row, probe_ok


def _row(name: str, features: np.ndarray, facts: dict, images, **scores) -> RankedBackbone:
    """A candidate's row: its scores, and what it costs (size, features, speed, memory)."""
    return RankedBackbone(
        backbone=name,
        **scores,
        tied_with_best=False,
        parameters=int(facts.get("parameters", 0)),
        feature_dim=int(features.shape[1]),
        image_size=int(facts.get("image_size", 0)),
        images=len(images),
        seconds=0.0,
        ms_per_image=round(1000 * float(facts["forward_seconds"]) / len(images), 2),
        peak_memory_mb=_peak_memory_mb(),
    )


def _score_multilabel(
    name, features, targets, facts, images, seed, rng, stop, draws
) -> tuple[RankedBackbone, tuple[np.ndarray, np.ndarray]]:
    """``_score`` for multi-label data: macro mAP of the probe and of the k-NN scores, LogME per label."""
    from tlstudio.core.training import ranking_multilabel as ml

    probs = ml.out_of_sample_label_probabilities(features, targets, seed=seed, stop=stop)
    knn = ml.knn_label_scores(features, targets, NEIGHBOURS)
    score = logme(features, targets)
    row = _row(
        name,
        features,
        facts,
        images,
        score=round(float(ml.macro_map(targets, probs) or 0.0), 4),
        interval=_rounded(ml.bootstrap_interval(targets, probs, draws)),
        knn=round(float(ml.macro_map(targets, knn) or 0.0), 4),
        knn_interval=_rounded(ml.bootstrap_interval(targets, knn, draws)),
        logme=round(score, 4),
        logme_interval=_rounded(_logme_interval(features, targets, score, rng)),
        metric="macro_map",
    )
    return row, (targets, probs)


def _logme_interval(features: np.ndarray, labels: np.ndarray, score: float, rng) -> tuple[float, float]:
    """score ± 1.96 standard errors, the error from a delete-d jackknife (Shao & Wu, 1989): the
    spread of LogME over subsamples of LOGME_KEEP of the images, times sqrt(keep / (n − keep))."""
    n = len(labels)
    keep = max(2, round(LOGME_KEEP * n))
    if keep >= n:
        return score, score
    values = [
        logme(features[idx], labels[idx]) for idx in (rng.permutation(n)[:keep] for _ in range(LOGME_DRAWS))
    ]
    error = float(np.std(values, ddof=1)) * float(np.sqrt(keep / (n - keep)))
    return score - 1.96 * error, score + 1.96 * error


def _rounded(interval) -> tuple[float, float]:
    return round(float(interval[0]), 4), round(float(interval[1]), 4)


def _peak_memory_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
