"""Likely label errors: images whose class, judged by a frozen backbone and a linear probe that
never saw them, looks like another one.

Confident learning (Northcutt et al., 2021) on cross-validated, out-of-sample probabilities: every
image is scored by a probe fitted on the other folds of the backbone's features (the same probe as
the recipe's phase 1); the images whose given label those probabilities contradict are ranked by
cleanlab's label quality score, and those that cleanlab's filter flags are marked as confident.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from tlstudio.core.backbone.classifier import build_classifier
from tlstudio.core.backbone.registry import build_backbone, input_size_of, resolve_backbone
from tlstudio.core.data.health import DatasetReport
from tlstudio.core.data.pipeline import make_dataset
from tlstudio.core.data.split import ManifestEntry
from tlstudio.core.settings import SEED
from tlstudio.core.training.feature_cache import feature_extractor
from tlstudio.core.training.probe import fit_probe, stratified_folds

FOLDS = 5


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


def image_features(
    report: DatasetReport,
    backbone: str,
    *,
    weights: str = "imagenet",
    image_size: int | None = None,
    batch_size: int = 32,
    stop: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pooled features of every usable image of a scanned folder, in ``report.images`` order.

    Returns:
        (features (n, d), labels (n,) as class indices, classes).
    """
    spec = resolve_backbone(backbone)
    net = build_backbone(spec, weights=weights, image_size=image_size)
    size = image_size or input_size_of(net) or spec.default_size
    classes = sorted(report.classes)
    model = build_classifier(net, len(classes), size, preprocessing=spec.preprocessing)
    extractor = feature_extractor(model)
    entries = [ManifestEntry(r.path, r.sha256, r.label, "train") for r in report.images]
    dataset = make_dataset(entries, report.root, classes, size, batch_size, cache="none")
    chunks, labels = [], []
    for pixels, y in dataset:
        if stop is not None and stop.is_set():
            raise InterruptedError("label check cancelled")
        chunks.append(np.asarray(extractor(pixels, training=False)).reshape(len(y), -1))
        labels.append(np.asarray(y))
    return np.concatenate(chunks), np.concatenate(labels), classes


def out_of_sample_probabilities(
    features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = FOLDS, seed: int = SEED
) -> np.ndarray:
    """Each image's class probabilities from a probe fitted without it (stratified folds).

    Args:
        features: (n, d) backbone features.
        labels: (n,) class indices.
        num_classes: outputs.
        folds: how many folds (fewer when a class has fewer images).
        seed: the fold assignment.

    Returns:
        (n, num_classes) probabilities.

    Raises:
        ValueError: a class with fewer than 2 images (nothing to hold out).
    """
    fold_of = stratified_folds(labels, folds, seed)
    if fold_of is None:
        raise ValueError("every class needs at least 2 images to judge labels out of sample")
    # the regularisation is chosen once, on all images; each fold refits with it
    l2 = fit_probe(features, labels, num_classes, seed=seed).l2
    probs = np.zeros((len(labels), num_classes), np.float64)
    for k in range(int(fold_of.max()) + 1):
        held = fold_of == k
        probe = fit_probe(features[~held], labels[~held], num_classes, l2_grid=(l2,), folds=0, seed=seed)
        probs[held] = probe.predict_proba(features[held])
    return probs


def rank_label_issues(
    labels: np.ndarray, probs: np.ndarray, paths: list[str], classes: list[str]
) -> list[LabelIssue]:
    """The images whose out-of-sample prediction disagrees with their label, plus any that confident
    learning flags, ranked by cleanlab's label quality score (the probability of the given label),
    lowest first.

    cleanlab's own filter lists fewer images than were mislabelled on our tasks (it is built for
    precision): it found 60–87% of flipped labels where this ranking put 73–93% of them within the
    first k entries (the README's "Benchmarks"). So the list keeps every disagreement, and
    ``confident`` marks the images the filter itself flags.
    """
    from cleanlab.filter import find_label_issues as confident_learning
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    flagged = set(int(i) for i in np.flatnonzero(confident_learning(labels, probs)))  # (a boolean mask)
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


def find_label_issues(
    report: DatasetReport,
    backbone: str,
    *,
    weights: str = "imagenet",
    image_size: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[LabelIssue]:
    """Likely label errors of a scanned, usable folder, most likely first.

    Args:
        report: the dataset doctor's report (``inspect_folder``).
        backbone: a backbone name or file (as for training).
        weights: its weights (``none`` judges with random features: little better than chance).
        image_size: input size (default: the backbone's).
        stop: set to cancel.
        progress: told each step in words.

    Returns:
        The images whose labels the backbone's features contradict.
    """
    say = progress or (lambda _: None)
    say(f"computing {backbone} features of {len(report.images)} images")
    features, labels, classes = image_features(
        report, backbone, weights=weights, image_size=image_size, stop=stop
    )
    say(f"scoring each image with a probe fitted on the other {FOLDS - 1} folds")
    probs = out_of_sample_probabilities(features, labels, len(classes))
    return rank_label_issues(labels, probs, [r.path for r in report.images], classes)
