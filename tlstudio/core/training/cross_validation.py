"""K-fold cross-validation: the accuracy to expect from a recipe, without trusting one small split.

Every image is in the test split of exactly one fold; within each class the folds are as equal as
the counts allow, and byte-identical files (same SHA-256) always land in the same fold. In each fold
a share of the remaining images is the validation split (early stopping, WiSE-FT), the rest trains.
Each fold is a normal run in ``OUT/fold-N`` (no export); ``OUT/cross_validation.json`` holds the
mean and spread of the folds' test accuracies and the pooled accuracy with its 95% interval.
Multi-label data (a labels CSV) is dealt and scored by ``cross_validation_multilabel`` (macro mAP).
"""

from __future__ import annotations

import math
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tlstudio.core import atomic
from tlstudio.core.data.split import Manifest, ManifestEntry
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import wilson_interval


def fold_manifests(
    manifest: Manifest, k: int, val_fraction: float, seed: int, group_of: dict[str, str] | None = None
) -> list[Manifest]:
    """The K manifests of a stratified, leak-free K-fold split of every entry of ``manifest``.

    Args:
        manifest: every image, with its class.
        k: folds.
        val_fraction: the share of each fold's training images held out for validation.
        seed: the assignment.
        group_of: each path's look-alike group (``split.look_alike_groups``): a group stays in one
            split of every fold; without it, identical files (same SHA-256) are grouped.

    Returns:
        One manifest per fold. Pseudo-labelled images (and their group) are in train in every fold.

    Raises:
        ValueError: when k < 2 or a class has fewer than k images.
    """
    from tlstudio.core.data.split import is_pseudo_labelled

    if k < 2:
        raise ValueError("--folds needs at least 2 folds")
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    by_class: dict[str, dict[str, list[ManifestEntry]]] = defaultdict(lambda: defaultdict(list))
    for e in manifest.entries:
        by_class[e.label][(group_of or {}).get(e.path, e.sha256)].append(e)
    pseudo = {
        key
        for groups in by_class.values()
        for key, es in groups.items()
        if any(is_pseudo_labelled(e.path) for e in es)
    }
    for label in list(by_class):  # a group spanning classes belongs to its first class only
        for key in list(by_class[label]):
            owner = min(c for c in by_class if key in by_class[c])
            if owner != label:
                by_class[owner][key] += by_class[label].pop(key)
    always_train = {
        label: {key: groups.pop(key) for key in list(groups) if key in pseudo}
        for label, groups in by_class.items()
    }
    for label, groups in sorted(by_class.items()):
        if len(groups) < k:
            raise ValueError(f"class '{label}' has {len(groups)} distinct images, fewer than {k} folds")
        keys = sorted(groups)
        start = int(rng.integers(k))
        for i, key in enumerate(rng.permutation(keys)):
            fold_of[key] = (start + i) % k
    folds = []
    for fold in range(k):
        entries = []
        for _, groups in sorted(by_class.items()):
            rest = [key for key in sorted(groups) if fold_of[key] != fold]
            n_val = round(val_fraction * len(rest)) if len(rest) > 2 else 0
            val = set(np.random.default_rng(seed + fold).permutation(rest)[:n_val]) if n_val else set()
            for key in sorted(groups):
                split = "test" if fold_of[key] == fold else ("val" if key in val else "train")
                entries += [ManifestEntry(e.path, e.sha256, e.label, split) for e in groups[key]]
        for groups in always_train.values():
            for members in groups.values():
                entries += [ManifestEntry(e.path, e.sha256, e.label, "train") for e in members]
        folds.append(Manifest(tuple(sorted(entries, key=lambda e: (e.label, e.path)))))
    return folds


def cross_validate(
    settings,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    k: int,
    *,
    manifest: Manifest | None = None,
    on_event=None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Train one run per fold and summarise their test accuracies (multi-label: macro mAP).

    Args:
        settings: the recipe to evaluate.
        data_dir: the data folder or labels CSV.
        out_dir: where ``fold-N`` runs and ``cross_validation.json`` go.
        k: the number of folds.
        manifest: the images to use (default: every usable image of ``data_dir``).
        on_event, stop: passed to each run.

    Returns:
        ``{"k", "task", "metric", "folds": [...], "mean", "sd", "pooled_accuracy", "pooled_interval",
        "images"}``; multi-label data: ``cross_validation_multilabel.summarise_multilabel``'s.
    """
    from tlstudio.core.data.source import inspect_data
    from tlstudio.core.data.split import SplitConfig, look_alike_groups, make_split
    from tlstudio.core.training import cross_validation_multilabel as multi
    from tlstudio.core.training.session import TrainingSession

    report = inspect_data(data_dir)  # the looks: near-duplicates stay in one split of every fold
    if manifest is None:
        if not report.usable:
            raise ValueError(f"{data_dir} is not usable: {report.problem}")
        config = SplitConfig(0.0, 0.0, settings.seed)
        manifest = make_split(report.images, config, multi_label=report.task == "multi_label")
    group_of = look_alike_groups(report.images)
    out = Path(out_dir)
    folds = []
    deal = multi.multilabel_fold_manifests if manifest.multi_label else fold_manifests
    score = "test_macro_map" if manifest.multi_label else "test_accuracy"
    manifests = deal(manifest, k, settings.val_fraction, settings.seed, group_of)
    for i, fold in enumerate(manifests, start=1):
        result = TrainingSession(
            settings, data_dir, out / f"fold-{i}", manifest=fold, on_event=on_event, stop=stop,
            export=False,
        ).run()  # fmt: skip
        n = len(fold.subset("test"))
        folds.append(
            {
                "fold": i,
                "status": result.status,
                "test_images": n,
                score: result.metrics.get(score),
            }
        )
        if result.status == "stopped" or (stop is not None and stop.is_set()):
            break
    if manifest.multi_label:
        summary = multi.summarise_multilabel(k, folds, out, settings.seed)
        atomic.write_json(out / files.CROSS_VALIDATION, summary)
        return summary
    scored = [f for f in folds if f["test_accuracy"] is not None]
    accuracies = [float(f["test_accuracy"]) for f in scored]
    correct = sum(round(f["test_accuracy"] * f["test_images"]) for f in scored)
    total = sum(f["test_images"] for f in scored)
    summary = {
        "k": k,
        "task": "single_label",
        "metric": "accuracy",
        "folds": folds,
        "mean": float(np.mean(accuracies)) if accuracies else None,
        "sd": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else None,
        "pooled_accuracy": correct / total if total else None,
        "pooled_interval": list(wilson_interval(correct, total)) if total else None,
        "images": total,
    }
    atomic.write_json(out / files.CROSS_VALIDATION, summary)
    return summary


def describe(summary: dict[str, object]) -> str:
    """One paragraph for the terminal."""
    if summary.get("task") == "multi_label":
        from tlstudio.core.training.cross_validation_multilabel import describe_multilabel

        return describe_multilabel(summary)
    if summary["mean"] is None:
        return "No fold finished."
    sd = summary["sd"]
    lo, hi = summary["pooled_interval"]
    per_fold = ", ".join(
        f"{f['test_accuracy']:.3f}" if f["test_accuracy"] is not None else f["status"]
        for f in summary["folds"]
    )
    spread = f" ± {sd:.3f} (sd)" if sd is not None and not math.isnan(sd) else ""
    return (
        f"Cross-validated test accuracy over {len(summary['folds'])} folds: {summary['mean']:.3f}{spread} "
        f"(folds: {per_fold}); pooled {summary['pooled_accuracy']:.3f} on {summary['images']} images, "
        f"95% interval {lo:.3f}–{hi:.3f}."
    )
