"""K-fold cross-validation of multi-label data: folds dealt by iterative stratification, scored by macro mAP.

The folds are dealt like the split (``iterative_split``): the rarest label first, each of its
look-alike groups to the fold that still wants most of that label, so every label with at least K
distinct images is in the test split of every fold. Within a fold the remaining groups are split
into train and validation the same way. The estimate is the mean of the folds' test macro mAP, with
the spread across folds and a 95% percentile-bootstrap interval of that mean (each fold's test
images drawn with replacement, the folds kept apart: a model's scores are only ranked against its
own, since average precision pooled across differently calibrated fold models is biased).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tlstudio.core.data.iterative_split import iterative_stratification, split_targets
from tlstudio.core.data.split import Manifest, ManifestEntry
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.multilabel_metrics import ranking_scores
from tlstudio.core.results.run_history import read_json
from tlstudio.core.settings import BOOTSTRAP_RESAMPLES


def multilabel_fold_manifests(
    manifest: Manifest, k: int, val_fraction: float, seed: int, group_of: dict[str, str] | None = None
) -> list[Manifest]:
    """The K manifests of a multi-label K-fold split of every entry of ``manifest``.

    Args:
        manifest: every image, with its labels (``multi_label``).
        k: folds.
        val_fraction: the share of each fold's remaining images held out for validation.
        seed: the assignment.
        group_of: each path's look-alike group (``split.look_alike_groups``): a group stays in one
            split of every fold; without it, identical files (same SHA-256) are grouped.

    Returns:
        One multi-label manifest per fold; every image is in the test split of exactly one.

    Raises:
        ValueError: when k < 2, there are fewer distinct images than folds, or a label is on fewer
            than 2 distinct images (a fold would test it without training on it).
    """
    if k < 2:
        raise ValueError("--folds needs at least 2 folds")
    members: dict[str, list[ManifestEntry]] = {}
    for e in manifest.entries:
        members.setdefault((group_of or {}).get(e.path, e.sha256), []).append(e)
    keys = sorted(members)
    if len(keys) < k:
        raise ValueError(f"the data has {len(keys)} distinct images, fewer than {k} folds")
    labels = manifest.classes
    column = {name: j for j, name in enumerate(labels)}
    y = np.zeros((len(keys), len(labels)), np.int64)
    for g, key in enumerate(keys):
        for e in members[key]:
            for label in e.labels:
                y[g, column[label]] += 1
    sizes = np.array([len(members[key]) for key in keys], np.int64)
    spread = (y > 0).sum(0)
    if len(labels) and spread.min() < 2:
        rare = labels[int(np.argmin(spread))]
        raise ValueError(
            f"label '{rare}' is on {int(spread.min())} distinct image(s): k-fold needs at least 2 (one to "
            "train on while another is tested)"
        )
    share = np.full(k, 1.0 / k)
    fold_of = iterative_stratification(y, sizes, np.outer(share, y.sum(0)), share * sizes.sum(), seed)
    if empty := [f + 1 for f in range(k) if not (fold_of == f).any()]:
        raise ValueError(f"fold {empty[0]} would have no image: use fewer folds")
    folds = []
    for fold in range(k):
        rest = np.flatnonzero(fold_of != fold)
        val_of = _validation(y[rest], sizes[rest], val_fraction, seed + fold)
        split = {keys[g]: "test" for g in np.flatnonzero(fold_of == fold)}
        split |= {keys[g]: "val" if v else "train" for g, v in zip(rest, val_of, strict=True)}
        entries = [ManifestEntry(e.path, e.sha256, e.label, split[key]) for key in keys for e in members[key]]
        folds.append(Manifest(tuple(sorted(entries, key=lambda e: e.path)), multi_label=True))
    return folds


def _validation(y: np.ndarray, sizes: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which of these groups validate (True) and which train, by iterative stratification."""
    per_label = y.sum(0)
    val_labels = np.array([split_targets(int(n), fraction) for n in per_label], np.int64)
    total = int(sizes.sum())
    val_size = round(total * fraction) if total > 2 else 0
    if val_size == 0:
        return np.zeros(len(sizes), bool)
    label_targets = np.stack([np.maximum(per_label - val_labels, 0), val_labels])
    size_targets = np.array([total - val_size, val_size])
    return iterative_stratification(y, sizes, label_targets, size_targets, seed) == 1


def fold_scores(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A fold's test targets and probabilities, read back from its ``evaluation.json`` (None: none)."""
    evaluation = read_json(run_dir / files.EVALUATION)
    labels, predictions = evaluation.get("labels"), evaluation.get("predictions")
    if not labels or not predictions:
        return None
    targets = np.array([[float(x in p["true"]) for x in labels] for p in predictions])
    probs = np.array([[float(p["probabilities"][x]) for x in labels] for p in predictions])
    return targets, probs


def summarise_multilabel(
    k: int, folds: list[dict[str, Any]], out: Path, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, Any]:
    """``cross_validation.json`` of multi-label folds: the mean of their test macro mAP and its interval.

    Args:
        k: the folds asked for.
        folds: one record per fold run (``fold``, ``status``, ``test_images``, ``test_macro_map``).
        out: the folds' parent (``fold-N/evaluation.json`` is read for the bootstrap).
        seed: the bootstrap's draws.
        resamples: bootstrap resamples.

    Returns:
        ``{"k", "task", "metric", "folds", "mean", "sd", "interval", "images"}``.
    """
    scored = [f for f in folds if f["test_macro_map"] is not None]
    values = [float(f["test_macro_map"]) for f in scored]
    tested = [s for f in scored if (s := fold_scores(out / f"fold-{f['fold']}")) is not None]
    return {
        "k": k,
        "task": "multi_label",
        "metric": "macro_map",
        "folds": folds,
        "mean": float(np.mean(values)) if values else None,
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "interval": _interval(tested, resamples, seed) if len(tested) == len(scored) and values else None,
        "images": sum(f["test_images"] for f in scored),
    }


def _interval(tested: list[tuple[np.ndarray, np.ndarray]], resamples: int, seed: int) -> list[float] | None:
    """The 95% percentile interval of the mean over folds of the macro mAP, each fold's images drawn
    with replacement."""
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(resamples):
        drawn = []
        for targets, probs in tested:
            idx = rng.integers(0, len(targets), len(targets))
            _, macro, _ = ranking_scores(targets[idx], probs[idx])
            if macro is not None:
                drawn.append(macro)
        if len(drawn) == len(tested):
            means.append(float(np.mean(drawn)))
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))] if means else None


def describe_multilabel(summary: dict[str, Any]) -> str:
    """One paragraph for the terminal."""
    if summary["mean"] is None:
        return "No fold finished."
    sd = summary["sd"]
    per_fold = ", ".join(
        f"{f['test_macro_map']:.3f}" if f["test_macro_map"] is not None else f["status"]
        for f in summary["folds"]
    )
    spread = f" ± {sd:.3f} (sd)" if sd is not None and not math.isnan(sd) else ""
    interval = summary["interval"]
    within = f", 95% interval {interval[0]:.3f}–{interval[1]:.3f}" if interval else ""
    return (
        f"Cross-validated test macro mAP over {len(summary['folds'])} folds: {summary['mean']:.3f}{spread} "
        f"(folds: {per_fold}); on {summary['images']} test images{within} (bootstrap of each fold's images)."
    )
