"""Likely label errors: images whose class, judged by a frozen backbone and a linear probe that
never saw them, looks like another one.

Confident learning (Northcutt et al., 2021) on cross-validated, out-of-sample probabilities: every
image is scored by a probe fitted on the other folds of the backbone's features (the same probe as
the recipe's phase 1); the images whose given label those probabilities contradict are ranked by
cleanlab's label quality score, and those that cleanlab's filter flags are marked as confident.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from tlstudio.core import events as ev
from tlstudio.core.backbone.classifier import build_classifier
from tlstudio.core.backbone.registry import build_backbone, input_size_of, resolve_backbone
from tlstudio.core.cancel import Cancelled
from tlstudio.core.data.health import DatasetReport
from tlstudio.core.data.pipeline import make_dataset
from tlstudio.core.data.split import ManifestEntry
from tlstudio.core.settings import BLAS_THREADS, LABEL_CHECK_FOLDS, SEED
from tlstudio.core.training.callbacks import StopRequested
from tlstudio.core.training.feature_cache import feature_extractor
from tlstudio.core.training.interrupt import FirstBatchInterrupt
from tlstudio.core.training.out_of_fold import out_of_fold
from tlstudio.core.training.probe import fit_probe, stratified_folds

if TYPE_CHECKING:
    from tlstudio.core.training.label_issues_multilabel import MultiLabelIssue

FOLDS = LABEL_CHECK_FOLDS
OUTLIER_NEIGHBOURS = 10
OUTLIER_FENCE = 3.0
"""An image is off-distribution when its mean cosine distance to its ``OUTLIER_NEIGHBOURS`` nearest
images (in the backbone's features) lies above the third quartile of all images' by more than
``OUTLIER_FENCE`` interquartile ranges (Tukey's "far out" fence)."""


@dataclass(frozen=True)
class LabelIssue:
    """An image whose label is likely wrong."""

    path: str  # relative to the data folder
    given: str
    suggested: str  # the class the out-of-sample probabilities prefer
    confidence: float  # their probability of the suggested class
    given_probability: float  # and of the given one
    confident: bool  # also flagged by confident learning's filter (cleanlab): the surest cases

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Outlier:
    """An image unlike the rest of the folder (in the backbone's features)."""

    path: str
    label: str
    distance: float  # mean cosine distance to its nearest images
    fence: float  # the distance above which an image counts as off-distribution

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, with the reason in words."""
        return asdict(self) | {"reason": "off-distribution: unlike the other images of the folder"}


def nearest_others(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's k nearest *other* images by cosine distance (an identical copy counts as other).

    Args:
        features: (n, d) features, n ≥ 2.
        k: neighbours wanted (at most n − 1 are given).

    Returns:
        (distances, indices), each (n, k), nearest first.
    """
    from sklearn.neighbors import NearestNeighbors

    k = max(1, min(k, len(features) - 1))
    search = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(features)
    return search.kneighbors()  # without X, sklearn leaves each image itself out


def off_distribution(features: np.ndarray, paths: list[str], labels: list[str]) -> list[Outlier]:
    """Images far from all others in feature space, farthest first (see ``OUTLIER_FENCE``).

    Args:
        features: (n, d) backbone features.
        paths: each image's path.
        labels: each image's class.

    Returns:
        The outliers, farthest first (empty for fewer than 5 images).
    """
    n = len(features)
    if n < 5:
        return []
    distances, _ = nearest_others(features, OUTLIER_NEIGHBOURS)
    score = distances.mean(axis=1)
    q1, q3 = np.percentile(score, [25, 75])
    fence = float(q3 + OUTLIER_FENCE * (q3 - q1))
    far = [i for i in np.argsort(-score, kind="stable") if score[i] > fence]
    return [Outlier(paths[i], labels[i], round(float(score[i]), 4), round(fence, 4)) for i in far]


def image_features(
    report: DatasetReport,
    backbone: str,
    *,
    weights: str = "imagenet",
    image_size: int | None = None,
    batch_size: int = 32,
    stop: threading.Event | None = None,
    images: list | None = None,
    facts: dict[str, object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pooled features of every usable image of a scanned folder, in ``report.images`` order.

    Args:
        report: the scanned folder.
        backbone: a backbone name or file.
        weights: its weights.
        image_size: input size (default: the backbone's).
        batch_size: images per forward pass.
        stop: set to cancel (``core.cancel.Cancelled``).
        images: only these of the report's images (e.g. a split's training images), in this order.
        facts: filled with the backbone's ``parameters`` and the ``image_size`` used.
        progress: called with (images done, images in all) after each batch.

    Returns:
        (features (n, d), labels (n,) as class indices, classes); for a multi-label report
        (``report.task``) the labels are (n, labels) 0/1 indicators and ``classes`` the labels.
    """
    spec = resolve_backbone(backbone)
    net = build_backbone(spec, weights=weights, image_size=image_size)
    size = image_size or input_size_of(net) or spec.default_size
    if facts is not None:
        facts.update(parameters=int(net.count_params()), image_size=int(size))
    classes = sorted(report.classes)
    model = build_classifier(
        net, len(classes), size, preprocessing=spec.preprocessing, class_token=spec.class_token
    )
    extractor = feature_extractor(model)
    chosen = report.images if images is None else images
    entries = [ManifestEntry(r.path, r.sha256, r.label, "train") for r in chosen]
    multi = report.task == "multi_label"
    dataset = make_dataset(entries, report.root, classes, size, batch_size, cache="none", multi_label=multi)
    chunks, labels, done = [], [], 0
    started = time.perf_counter()
    stop = stop or threading.Event()
    at_once = FirstBatchInterrupt(stop)  # the first batch traces the backbone: slow, so stoppable inside
    try:
        for pixels, y in dataset:
            if stop.is_set():
                raise Cancelled("label check cancelled")
            if not chunks:
                at_once.arm()
            chunks.append(np.asarray(extractor(pixels, training=False)).reshape(len(y), -1))
            at_once.disarm()
            labels.append(np.asarray(y))
            done += len(y)
            if progress is not None:
                progress(done, len(entries))
    except StopRequested:
        raise Cancelled("label check cancelled") from None
    finally:
        at_once.close()
    if not chunks:
        raise ValueError("no image to compute features of")
    features = np.concatenate(chunks)
    if len(features) != len(entries):  # the pipeline drops files it cannot read: the paths would shift
        raise ValueError(
            f"{len(entries) - len(features)} image(s) could not be read any more (moved, deleted or changed "
            "since the scan): scan the folder again"
        )
    if facts is not None:
        facts["forward_seconds"] = time.perf_counter() - started
    return features, np.concatenate(labels), classes


def out_of_sample_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    folds: int = FOLDS,
    seed: int = SEED,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Each image's class probabilities from a probe fitted without it (stratified folds).

    Args:
        features: (n, d) backbone features.
        labels: (n,) class indices.
        num_classes: outputs.
        folds: how many folds (fewer when a class has fewer images).
        seed: the fold assignment.
        stop: set to cancel between fits (``core.cancel.Cancelled``).
        progress: called with (fits done, fits in all) after each probe fit.

    Returns:
        (n, num_classes) probabilities.

    Raises:
        ValueError: a class with fewer than 2 images (nothing to hold out).
    """
    fold_of = stratified_folds(labels, folds, seed)
    if fold_of is None:
        raise ValueError("every class needs at least 2 images to judge labels out of sample")
    return out_of_fold(
        lambda x, y, **options: fit_probe(x, y, num_classes, seed=seed, **options),
        features,
        labels,
        fold_of,
        num_classes,
        stop=stop,
        progress=progress,
    )


def rank_label_issues(
    labels: np.ndarray, probs: np.ndarray, paths: list[str], classes: list[str]
) -> list[LabelIssue]:
    """The images whose out-of-sample prediction disagrees with their label, plus any that confident
    learning flags, ranked by cleanlab's label quality score (the probability of the given label),
    lowest first.

    cleanlab's own filter lists fewer images than were mislabelled on our tasks (it is built for
    precision): it found 60–87% of flipped labels where this ranking put 73–93% of them within the
    first k entries (docs/benchmarks.md). So the list keeps every disagreement, and
    ``confident`` marks the images the filter itself flags.
    """
    from cleanlab.filter import find_label_issues as confident_learning
    from cleanlab.rank import get_label_quality_scores

    # n_jobs=1: inside TensorFlow's (and Qt's) process a forked pool costs more than the work (10×)
    with threadpool_limits(limits=BLAS_THREADS):
        quality = get_label_quality_scores(labels, probs, method="self_confidence")
        mask = confident_learning(labels, probs, n_jobs=1)  # (a boolean mask)
    flagged = set(int(i) for i in np.flatnonzero(mask))
    candidates = flagged | set(int(i) for i in np.flatnonzero(probs.argmax(1) != labels))
    issues = []
    for i in sorted(candidates, key=lambda j: (quality[j], paths[j])):
        suggested = int(np.argmax(probs[i]))
        if suggested == int(labels[i]):  # flagged, yet the label is still the likeliest: say so
            suggested = int(np.argsort(probs[i])[-2])
        issues.append(
            LabelIssue(
                paths[i],
                classes[int(labels[i])],
                classes[suggested],
                round(float(probs[i, suggested]), 4),
                round(float(probs[i, int(labels[i])]), 4),
                i in flagged,
            )
        )
    return issues


def find_label_issues(report: DatasetReport, backbone: str, **options) -> list[LabelIssue]:
    """Likely label errors of a scanned, usable folder, most likely first (``check_labels``'s first half).

    Args:
        report: the dataset doctor's report (``inspect_folder``).
        backbone: a backbone name or file (as for training).
        **options: as for ``check_labels``.

    Returns:
        The images whose labels the backbone's features contradict.
    """
    return check_labels(report, backbone, **options)[0]


def check_labels(
    report: DatasetReport,
    backbone: str,
    *,
    weights: str = "imagenet",
    image_size: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
    on_event: Callable[[ev.Working], None] | None = None,
) -> tuple[list[LabelIssue] | list[MultiLabelIssue], list[Outlier]]:
    """Likely label errors and off-distribution images of a scanned, usable folder, from one pass
    of the backbone over every image.

    Args:
        report: the dataset doctor's report (``inspect_folder``).
        backbone: a backbone name or file (as for training).
        weights: its weights (``none`` judges with random features: little better than chance).
        image_size: input size (default: the backbone's).
        stop: set to cancel (``core.cancel.Cancelled`` at the next batch of images or probe fit).
        progress: told each step in words.
        on_event: told each step as ``Working`` events (step in words, done of total), for a bar.

    Returns:
        (label issues, most likely first; outliers, farthest first); multi-label data (a labels CSV
        with several labels or none on an image): ``MultiLabelIssue``s, labels missing or wrong.
    """
    say = progress or (lambda _: None)
    tell = on_event or (lambda _: None)
    step = f"computing {backbone} features of {len(report.images)} images"
    say(step)
    tell(ev.Working(step, 0, len(report.images)))
    features, labels, classes = image_features(
        report,
        backbone,
        weights=weights,
        image_size=image_size,
        stop=stop,
        progress=lambda done, total: tell(ev.Working(step, done, total)),
    )
    step = f"scoring each image with a probe fitted on the other {FOLDS - 1} folds"
    say(step)
    tell(ev.Working(step))
    paths = [r.path for r in report.images]
    if report.task == "multi_label":
        from tlstudio.core.training import label_issues_multilabel as multi

        probs = multi.out_of_sample_multilabel(
            features, labels, stop=stop, progress=lambda done, total: tell(ev.Working(step, done, total))
        )
        tell(ev.Working("ranking the likely label errors and off-distribution images"))
        names = [r.label for r in report.images]  # (the labels joined by ';')
        found = multi.rank_multilabel_issues(labels, probs, paths, classes)
        return found, off_distribution(features, paths, names)
    probs = out_of_sample_probabilities(
        features,
        labels,
        len(classes),
        stop=stop,
        progress=lambda done, total: tell(ev.Working(step, done, total)),
    )
    step = "ranking the likely label errors and off-distribution images"
    tell(ev.Working(step))
    outliers = off_distribution(features, paths, [classes[int(y)] for y in labels])
    return rank_label_issues(labels, probs, paths, classes), outliers
