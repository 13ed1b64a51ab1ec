"""The dataset doctor's health report: counts, imbalance, duplicates and near-duplicates, image
quality (tiny, dark, bright, blank, blurred), sizes."""

from __future__ import annotations

import os
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from tlstudio.core.data.scan import (
    INTERRUPTED_STAGING,
    LINKED_FOLDER,
    OUTSIDE_LINK,
    ImageRecord,
    ScanResult,
    SkippedFile,
    scan_folder,
)
from tlstudio.core.data.split import PSEUDO_FOLDER, is_pseudo_labelled, look_alike_groups

IMBALANCE_WARNING_RATIO = 5.0
TINY_SIDE = 32
FEW_IMAGES = 5
GROUPED = 3  # beyond this many classes, a warning about classes names a few and counts the rest
_SIDE_BUCKETS = (
    (32, "<32"),
    (64, "32-63"),
    (128, "64-127"),
    (256, "128-255"),
    (512, "256-511"),
    (1024, "512-1023"),
)


@dataclass(frozen=True)
class NearDuplicateGroup:
    """Files that look alike (near-duplicates, not all byte-identical); the split keeps them together."""

    paths: list[str]
    classes: list[str]

    @property
    def cross_class(self) -> bool:
        """True when the same (or a look-alike) image carries more than one label: a label conflict."""
        return len(set(self.classes)) > 1


@dataclass(frozen=True)
class DuplicateGroup(NearDuplicateGroup):
    """Files with identical bytes."""

    sha256: str = ""


@dataclass(frozen=True)
class QualityIssue:
    """An image that may be a poor training example, and why."""

    path: str
    reasons: list[str]


@dataclass
class DatasetReport:
    """Everything the doctor found, ready for the CLI, the GUI and the split."""

    root: str
    classes: dict[str, int]
    images: list[ImageRecord] = field(repr=False)
    skipped: list[SkippedFile]
    empty_classes: list[str]
    duplicates: list[DuplicateGroup]
    imbalance_ratio: float | None
    class_weights: dict[str, float]
    tiny_images: list[str]
    near_duplicates: list[NearDuplicateGroup]
    quality_issues: list[QualityIssue]
    pseudo_labelled: dict[str, int]
    size_stats: dict[str, object]
    formats: dict[str, int]
    warnings: list[str]
    problem: str | None
    unicode_twins: list[str] = field(default_factory=list)  # classes spelled by several folders (NFC/NFD)
    task: str = "single_label"  # labels_csv.TaskKind: multi_label when an image has several labels or none
    cooccurrence: dict[str, dict[str, int]] = field(default_factory=dict)  # multi-label: images per pair
    unlabelled: list[str] = field(default_factory=list)  # multi-label: images with no label
    data_file: str | None = None  # the labels CSV the images came from (``root`` is its folder)

    @property
    def source(self) -> str:
        """What the data was given as: the labels CSV, or the folder."""
        return self.data_file or self.root

    @property
    def usable(self) -> bool:
        """At least two classes have usable images."""
        return self.problem is None

    def images_of(self, label: str) -> list[ImageRecord]:
        """The usable images of one class (multi-label: those carrying the label)."""
        if self.task == "multi_label":
            return [r for r in self.images if label in r.label.split(";")]
        return [r for r in self.images if r.label == label]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (without the per-image list)."""
        return {
            "root": self.root,
            "usable": self.usable,
            "problem": self.problem,
            "classes": self.classes,
            "num_images": len(self.images),
            "skipped": [asdict(s) for s in self.skipped],
            "empty_classes": self.empty_classes,
            "warnings": self.warnings,
            "duplicates": [
                {"sha256": d.sha256, "paths": d.paths, "classes": d.classes, "cross_class": d.cross_class}
                for d in self.duplicates
            ],
            "imbalance_ratio": self.imbalance_ratio,
            "class_weights": self.class_weights,
            "tiny_images": self.tiny_images,
            "near_duplicates": [
                {"paths": g.paths, "classes": g.classes, "cross_class": g.cross_class}
                for g in self.near_duplicates
            ],
            "quality_issues": [asdict(q) for q in self.quality_issues],
            "pseudo_labelled": self.pseudo_labelled,
            "size_stats": self.size_stats,
            "formats": self.formats,
            "task": self.task,
            "data_file": self.data_file,
        } | (
            {"cooccurrence": self.cooccurrence, "unlabelled": self.unlabelled}
            if self.task == "multi_label"
            else {}
        )


def inspect_folder(root: str | os.PathLike[str], **scan_options) -> DatasetReport:
    """Scan a folder and build its health report (see ``scan_folder`` for the options)."""
    return build_report(scan_folder(root, **scan_options))


def build_report(scan: ScanResult, *, tiny_side: int = TINY_SIDE) -> DatasetReport:
    """Turn a scan into a health report with warnings a person can act on."""
    counts = Counter(r.label for r in scan.images)
    classes = {label: counts[label] for label in sorted(counts)}
    empty = sorted(set(scan.class_folders) - set(classes))
    duplicates = _duplicate_groups(scan.images)
    ratio = (max(classes.values()) / min(classes.values())) if len(classes) >= 2 else None
    tiny = [r.path for r in scan.images if min(r.width, r.height) < tiny_side]
    report = DatasetReport(
        root=scan.root,
        classes=classes,
        images=scan.images,
        skipped=scan.skipped,
        empty_classes=empty,
        duplicates=duplicates,
        imbalance_ratio=round(ratio, 3) if ratio is not None else None,
        class_weights=balanced_class_weights(classes),
        tiny_images=tiny,
        near_duplicates=near_duplicate_groups(scan.images),
        quality_issues=quality_issues(scan.images, tiny_side),
        pseudo_labelled=dict(
            sorted(Counter(r.label for r in scan.images if is_pseudo_labelled(r.path)).items())
        ),
        size_stats=_size_stats(scan.images),
        formats=dict(sorted(Counter(r.format for r in scan.images).items())),
        warnings=[],
        problem=_problem(scan, classes),
        unicode_twins=sorted(label for label, n in Counter(scan.class_folders).items() if n > 1),
    )
    report.warnings = _warnings(report, tiny_side)
    return report


def balanced_class_weights(classes: dict[str, int]) -> dict[str, float]:
    """Weights that make every class count equally: total / (num_classes * count)."""
    total = sum(classes.values())
    present = {k: v for k, v in classes.items() if v > 0}
    if not present:
        return {}
    return {k: round(total / (len(present) * v), 4) for k, v in present.items()}


def class_weights_for(mode: str, labels: list[str], classes: list[str]) -> dict[int, float] | None:
    """Keras ``class_weight`` for training labels, or None.

    Args:
        mode: ``none``, ``balanced``, or ``auto`` (balanced only beyond ``IMBALANCE_WARNING_RATIO``).
        labels: the class of each training image.
        classes: every class, in the model's order.

    Returns:
        Weight per class index, or None for unweighted training.
    """
    counts = {c: 0 for c in classes}
    for label in labels:
        counts[label] += 1
    present = [n for n in counts.values() if n]
    if (
        mode == "none"
        or not present
        or (mode == "auto" and max(present) / min(present) <= IMBALANCE_WARNING_RATIO)
    ):
        return None
    weights = balanced_class_weights(counts)
    return {i: weights.get(c, 1.0) for i, c in enumerate(classes)}


def _problem(scan: ScanResult, classes: dict[str, int]) -> str | None:
    if not scan.class_folders:
        return "no class folders found: put the images in one sub-folder per class"
    if len(classes) < 2:
        return (
            f"found {len(classes)} class folder(s) with usable images; at least two are needed "
            "(one sub-folder per class)"
        )
    return None


def _duplicate_groups(images: list[ImageRecord]) -> list[DuplicateGroup]:
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in images:
        by_hash[record.sha256].append(record)
    groups = [
        DuplicateGroup(sha256=h, paths=[r.path for r in rs], classes=[r.label for r in rs])
        for h, rs in by_hash.items()
        if len(rs) > 1
    ]
    return sorted(groups, key=lambda g: g.paths[0])


def near_duplicate_groups(images: list[ImageRecord]) -> list[NearDuplicateGroup]:
    """Groups of look-alike images that are not all byte-identical (those are ``duplicates``).

    Args:
        images: scan records with their ``look``.

    Returns:
        The groups, label conflicts (several classes) first.
    """
    group_of = look_alike_groups(images)
    members: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in images:
        members[group_of[record.path]].append(record)
    groups = [
        NearDuplicateGroup([r.path for r in rs], [r.label for r in rs])
        for rs in members.values()
        if len({r.sha256 for r in rs}) > 1
    ]
    return sorted(groups, key=lambda g: (not g.cross_class, g.paths[0]))


def quality_issues(images: list[ImageRecord], tiny_side: int = TINY_SIDE) -> list[QualityIssue]:
    """Images that are tiny, very dark, very bright, blank or blurred, each with its reasons.

    Blurred means sharper than neither ``looks.BLUR_SHARPNESS`` nor ``looks.BLUR_RELATIVE`` of
    the folder's median sharpness.

    Args:
        images: scan records (quality needs their ``look``; tiny needs only the size).
        tiny_side: images with a shorter side are tiny.

    Returns:
        The images with at least one reason, in path order.
    """
    from tlstudio.core.data import looks  # (NumPy: loaded when a folder is checked, not with the window)

    sharp = [r.look.sharpness for r in images if r.look is not None and r.look.sharpness > 0]
    blur_below = max(looks.BLUR_SHARPNESS, looks.BLUR_RELATIVE * statistics.median(sharp)) if sharp else 0.0
    out = []
    for r in images:
        reasons = [f"tiny ({r.width}×{r.height} px)"] if min(r.width, r.height) < tiny_side else []
        if r.look is not None:
            reasons += r.look.quality_reasons(blur_below)
        if reasons:
            out.append(QualityIssue(r.path, reasons))
    return sorted(out, key=lambda q: q.path)


def _size_stats(images: list[ImageRecord]) -> dict[str, object]:
    if not images:
        return {}
    widths = [r.width for r in images]
    heights = [r.height for r in images]
    buckets: Counter[str] = Counter()
    for r in images:
        side = min(r.width, r.height)
        buckets[next((name for limit, name in _SIDE_BUCKETS if side < limit), ">=1024")] += 1
    order = [name for _, name in _SIDE_BUCKETS] + [">=1024"]
    return {
        "width": {"min": min(widths), "median": statistics.median(widths), "max": max(widths)},
        "height": {"min": min(heights), "median": statistics.median(heights), "max": max(heights)},
        "short_side_histogram": {name: buckets[name] for name in order if buckets[name]},
    }


def _warnings(report: DatasetReport, tiny_side: int) -> list[str]:
    out: list[str] = []
    classes = report.classes
    if report.imbalance_ratio is not None and report.imbalance_ratio > IMBALANCE_WARNING_RATIO:
        big = max(classes, key=classes.__getitem__)
        small = min(classes, key=classes.__getitem__)
        out.append(
            f"classes are imbalanced {report.imbalance_ratio:.1f}:1 ('{big}' {classes[big]}, "
            f"'{small}' {classes[small]}): train with the suggested class weights, or collect more "
            f"'{small}' images"
        )
    few = [label for label, n in classes.items() if n < FEW_IMAGES]
    if len(few) > GROUPED:
        out.append(
            f"{len(few)} classes have fewer than {FEW_IMAGES} images ({_some(few)}): too few to split into "
            "train, validation and test, and to learn from"
        )
    for label in few if len(few) <= GROUPED else []:
        out.append(
            f"class '{label}' has only {classes[label]} image(s): too few to split into train, validation "
            "and test, and to learn from"
        )
    twins = report.unicode_twins
    if twins:
        out.append(
            f"{len(twins)} class name(s) spelled by more than one folder, in different Unicode forms "
            f"({_some(twins)}, as a copy from a Mac spells them): their images are one class; merge "
            "the folders"
        )
    empty = report.empty_classes
    if len(empty) > GROUPED:
        out.append(f"{len(empty)} empty class folders ({_some(empty)}): no usable images, ignored")
    for label in empty if len(empty) <= GROUPED else []:
        out.append(f"class folder '{label}' has no usable images and is ignored")
    linked = [x.path for x in report.skipped if x.reason in (LINKED_FOLDER, OUTSIDE_LINK)]
    if linked:
        out.append(
            f"{len(linked)} link(s) not followed ({_some(linked)}): a linked folder, or a link to a file "
            "outside the data folder, is never read; copy those images into the data folder to use them"
        )
    if any(x.reason == INTERRUPTED_STAGING for x in report.skipped):
        out.append(INTERRUPTED_STAGING)
    cross = [g for g in report.duplicates if g.cross_class]
    same = [g for g in report.duplicates if not g.cross_class]
    if same:
        extra = sum(len(g.paths) - 1 for g in same)
        out.append(
            f"{extra} duplicate file(s) within a class (identical bytes): copies are kept in one "
            "split so they cannot leak between train, validation and test; consider deleting them"
        )
    if cross:
        example = cross[0]
        out.append(
            f"{len(cross)} image(s) appear in more than one class (e.g. {' and '.join(example.paths[:2])}): "
            "a label conflict; keep each image in one class"
        )
    if report.pseudo_labelled:
        total = sum(report.pseudo_labelled.values())
        out.append(
            f"{total} pseudo-labelled image(s) (labelled by a model, in CLASS/{PSEUDO_FOLDER}/): counted in "
            "their class, used for training only, never for validation or test; delete those folders to "
            "train without them"
        )
    near_cross = [g for g in report.near_duplicates if g.cross_class]
    near_same = [g for g in report.near_duplicates if not g.cross_class]
    if near_cross:
        example = near_cross[0]
        out.append(
            f"{len(near_cross)} group(s) of look-alike images carry different labels (e.g. "
            f"{' and '.join(example.paths[:2])}): likely label conflicts; check them"
        )
    if near_same:
        out.append(
            f"{len(near_same)} group(s) of near-duplicate images within a class (copies resized, "
            "re-encoded or mirrored, or pictures that look almost the same): each group is kept in one "
            "split so it cannot leak between train, "
            "validation and test"
        )
    poor = [q for q in report.quality_issues if not all(x.startswith("tiny") for x in q.reasons)]
    if poor:
        kinds = Counter(reason for q in poor for reason in q.reasons if not reason.startswith("tiny"))
        listed = ", ".join(f"{n} {reason}" for reason, n in kinds.most_common())
        out.append(f"{len(poor)} image(s) may be poor examples ({listed}): see the quality list")
    if report.tiny_images:
        out.append(
            f"{len(report.tiny_images)} image(s) are smaller than {tiny_side} px on a side: "
            "they will be upscaled and blurry"
        )
    if report.skipped:
        out.append(
            f"{len(report.skipped)} file(s) or folder(s) skipped; see the list of skipped files "
            "for each reason"
        )
    return out


def _some(names: list[str], shown: int = GROUPED) -> str:
    """The first ``shown`` names, quoted, and how many more: 'a', 'b', 'c' and 9,997 more."""
    listed = ", ".join(f"'{n}'" for n in names[:shown])
    return listed + (f" and {len(names) - shown:,} more" if len(names) > shown else "")
