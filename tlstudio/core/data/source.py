"""The doctor's report of a data source: a folder with one sub-folder per class, or a labels CSV."""

from __future__ import annotations

import os
from collections import Counter

from tlstudio.core.data.health import (
    TINY_SIDE,
    DatasetReport,
    _warnings,
    build_report,
    inspect_folder,
)
from tlstudio.core.data.labels_csv import cooccurrence, is_labels_csv, label_sets, scan_labels_csv
from tlstudio.core.settings import MULTI_LABEL_MAX_POS_WEIGHT, PSEUDO_FOLDER


def inspect_data(path: str | os.PathLike[str], **scan_options) -> DatasetReport:
    """``inspect_folder`` for a folder, ``inspect_labels_csv`` for a labels CSV.

    Raises:
        LabelsCsvError: a CSV that cannot be used (one line: where and why).
    """
    return (
        inspect_labels_csv(path, **scan_options)
        if is_labels_csv(path)
        else inspect_folder(path, **scan_options)
    )


def inspect_labels_csv(path: str | os.PathLike[str], **scan_options) -> DatasetReport:
    """The health report of the images a labels CSV lists.

    A single-label CSV gives the same report a folder per class would. A multi-label one counts
    images per label (``classes``), label co-occurrence and the images with no label; duplicate and
    look-alike groups whose label sets differ are reported as label conflicts.

    Args:
        path: the CSV.
        scan_options: as ``scan_folder`` takes them.

    Raises:
        LabelsCsvError: a CSV that cannot be used.
    """
    table, scan = scan_labels_csv(path, **scan_options)
    report = build_report(scan)
    report.data_file = str(path)
    if table.task == "single_label":
        return report
    sets = label_sets(scan.images)
    counts = Counter(label for labels in sets for label in labels)
    labels = table.labels
    report.classes = {label: counts[label] for label in labels}
    present = [n for n in report.classes.values() if n]
    report.imbalance_ratio = round(max(present) / min(present), 3) if len(present) >= 2 else None
    report.class_weights = {  # what ``balanced`` would weigh each label's positives by (multilabel_weights)
        label: round(
            min(max((len(sets) - n) / n, 1 / MULTI_LABEL_MAX_POS_WEIGHT), MULTI_LABEL_MAX_POS_WEIGHT), 4
        )
        for label, n in report.classes.items()
        if 0 < n < len(sets)
    }
    report.empty_classes = []
    report.problem = None
    report.task = "multi_label"
    report.cooccurrence = cooccurrence(sets, labels)
    report.unlabelled = sorted(r.path for r, s in zip(scan.images, sets, strict=True) if not s)
    report.warnings = _warnings(report, TINY_SIDE)
    pseudo = [s for r, s in zip(scan.images, sets, strict=True) if r.path.split("/")[0] == PSEUDO_FOLDER]
    report.pseudo_labelled = dict(sorted(Counter(label for labels in pseudo for label in labels).items()))
    if pseudo:  # (`suggest --pseudo-label labels.csv`)
        report.warnings.append(
            f"{len(pseudo)} pseudo-labelled image(s) (labelled by a model, in {PSEUDO_FOLDER}/ beside the "
            "CSV): used for training only, never for validation or test; delete their rows to train "
            "without them"
        )
    return report
