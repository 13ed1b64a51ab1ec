"""Stratified, seeded train/validation/test split, written as a manifest that later runs reuse.

Identical files (same SHA-256) and near-duplicates (resized, re-encoded, mirrored copies: see
``looks.NEAR_DUPLICATE_BITS``) always land in the same split, so copies cannot leak from train
into validation or test. The split depends only on the files' contents, classes, the
fractions and the seed, never on directory listing order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tlstudio.core import atomic
from tlstudio.core.data.scan import ImageRecord, file_sha256, in_folder
from tlstudio.core.settings import PSEUDO_FOLDER, SEED, TEST_FRACTION, VAL_FRACTION

if TYPE_CHECKING:
    from tlstudio.core.settings import TrainSettings

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ("path", "sha256", "class", "split")
MULTI_LABEL_COLUMNS = ("path", "sha256", "labels", "split")
"""A multi-label manifest's columns: ``labels`` joins each image's labels with ';' ('' for none)."""


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of each class that go to validation and test, and the seed."""

    val_fraction: float = VAL_FRACTION
    test_fraction: float = TEST_FRACTION
    seed: int = SEED

    @classmethod
    def of(cls, settings: TrainSettings) -> SplitConfig:
        """The split a run's settings ask for.

        Args:
            settings: the run's settings.

        Returns:
            Their validation and test fractions and seed.
        """
        return cls(settings.val_fraction, settings.test_fraction, settings.seed)

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must leave images for training")


@dataclass(frozen=True)
class ManifestEntry:
    """One image of the split: relative path, content hash, class and split."""

    path: str
    sha256: str
    label: str  # a multi-label manifest's: the image's labels joined by ';' ('' for none)
    split: str

    @property
    def labels(self) -> tuple[str, ...]:
        """A multi-label entry's labels (``label`` split at ';')."""
        return tuple(self.label.split(";")) if self.label else ()


@dataclass(frozen=True)
class Manifest:
    """The split, in a stable order (class, then path)."""

    entries: tuple[ManifestEntry, ...]
    multi_label: bool = False  # images carry any number of labels (a labels CSV with several, or none)

    @property
    def task(self) -> str:
        """``labels_csv.TaskKind``: ``multi_label`` or ``single_label``."""
        return "multi_label" if self.multi_label else "single_label"

    def labels_of(self, entry: ManifestEntry) -> tuple[str, ...]:
        """The labels of one entry: its one class, or a multi-label entry's labels."""
        return entry.labels if self.multi_label else (entry.label,)

    @property
    def classes(self) -> list[str]:
        """Class (or label) names in label-index order (sorted)."""
        return sorted({label for e in self.entries for label in self.labels_of(e)})

    def missing_classes(self, split: str) -> list[str]:
        """Classes with no image in ``split`` (none when the split itself is empty).

        Args:
            split: "train", "val" or "test".

        Returns:
            Their names, sorted.
        """
        entries = self.subset(split)
        return sorted(set(self.classes) - {x for e in entries for x in self.labels_of(e)}) if entries else []

    def subset(self, split: str) -> list[ManifestEntry]:
        """Entries of one split."""
        return [e for e in self.entries if e.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: count}}."""
        out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        pairs = Counter((e.split, label) for e in self.entries for label in self.labels_of(e))
        for (split, label), n in sorted(pairs.items()):
            out[split][label] = n
        return out

    def to_csv(self) -> str:
        """The manifest as CSV text (the on-disk format)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(MULTI_LABEL_COLUMNS if self.multi_label else MANIFEST_COLUMNS)
        for e in self.entries:
            writer.writerow((e.path, e.sha256, e.label, e.split))
        return buf.getvalue()

    def fingerprint(self) -> str:
        """SHA-256 of the CSV text: names this exact set of files, labels and splits."""
        return hashlib.sha256(self.to_csv().encode("utf-8", "surrogateescape")).hexdigest()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the CSV atomically (temporary file, then rename)."""
        return atomic.write_text(path, self.to_csv(), errors="surrogateescape")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest CSV written by ``save``."""
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or tuple(rows[0]) not in (MANIFEST_COLUMNS, MULTI_LABEL_COLUMNS):
            raise ValueError(
                f"{path} is not a TL Studio manifest (expected columns {','.join(MANIFEST_COLUMNS)})"
            )
        entries = []
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != 4 or row[3] not in SPLITS:
                raise ValueError(f"{path}, line {number}: expected path,sha256,class,split")
            entries.append(ManifestEntry(*row))
        return cls(tuple(entries), multi_label=tuple(rows[0]) == MULTI_LABEL_COLUMNS)

    def verify(self, root: str | os.PathLike[str], *, check_hashes: bool = True) -> list[str]:
        """Problems with the files this manifest names under ``root`` (missing or changed)."""
        problems = []
        for e in self.entries:
            file = in_folder(root, e.path)
            if not file.is_file():
                problems.append(f"{e.path}: missing")
            elif check_hashes and file_sha256(file) != e.sha256:
                problems.append(f"{e.path}: content changed since the split was made")
        return problems


def make_split(
    images: list[ImageRecord], config: SplitConfig | None = None, *, multi_label: bool = False
) -> Manifest:
    """Split images per class into train/val/test, keeping identical files and near-duplicates together.

    Each group of look-alike files (``look_alike_groups``) is assigned to the class most of its
    copies carry; within each class, groups are ordered by hash, shuffled with the seed, and
    dealt to test, then validation, then train (a group that would overshoot a split's share
    goes to train). A class with at least three images gets at least one image in each split
    whose fraction is above zero, as long as it has enough groups small enough to deal (a class
    made of a few large groups of look-alikes may leave validation or test without it).
    Pseudo-labelled images (``PSEUDO_FOLDER``) and their look-alikes always go to train.

    Multi-label images (each record's ``label`` joins its labels with ';') are dealt by iterative
    stratification instead (``iterative_split``): every label in every split where it can be.

    Args:
        images: the scan's records (their ``look`` joins near-duplicates; without it, only
            identical files are grouped).
        config: fractions and seed.
        multi_label: the records are multi-label (``DatasetReport.task``).

    Returns:
        The manifest.
    """
    config = config or SplitConfig()
    group_of = look_alike_groups(images)
    if multi_label:
        from tlstudio.core.data.iterative_split import multilabel_assignment

        sets = [tuple(r.label.split(";")) if r.label else () for r in images]
        fractions = {"val": config.val_fraction, "test": config.test_fraction}
        assignment = multilabel_assignment(images, group_of, sets, fractions, config.seed)
        entries = sorted(
            (ManifestEntry(r.path, r.sha256, r.label, assignment[group_of[r.path]]) for r in images),
            key=lambda e: e.path,
        )
        return Manifest(tuple(entries), multi_label=True)
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in images:
        groups[group_of[record.path]].append(record)
    by_class: dict[str, list[str]] = defaultdict(list)
    for digest, members in groups.items():
        home = Counter(r.label for r in members).most_common()
        by_class[min(label for label, n in home if n == home[0][1])].append(digest)

    assignment: dict[str, str] = {}
    for label in sorted(by_class):
        pseudo = {d for d in by_class[label] if any(is_pseudo_labelled(r.path) for r in groups[d])}
        assignment.update(dict.fromkeys(pseudo, "train"))  # with its look-alikes: nothing leaks
        digests = sorted(set(by_class[label]) - pseudo)
        random.Random(f"{config.seed}:{label}").shuffle(digests)
        total = sum(len(groups[d]) for d in digests)
        targets = {
            "test": _target(total, config.test_fraction),
            "val": _target(total, config.val_fraction),
        }
        if total < 3:
            targets = {"test": 0, "val": 0}
        filled = Counter()
        for digest in digests:
            size = len(groups[digest])
            split = next((s for s in ("test", "val") if filled[s] + size <= targets[s]), "train")
            assignment[digest] = split
            filled[split] += size

    entries = sorted(
        (ManifestEntry(r.path, r.sha256, r.label, assignment[group_of[r.path]]) for r in images),
        key=lambda e: (e.label, e.path),
    )
    return Manifest(tuple(entries))


def is_pseudo_labelled(path: str) -> bool:
    """True for an image under ``CLASS/pseudo-labels/`` (a '/'-separated path relative to the data)."""
    parts = path.split("/")
    return len(parts) > 2 and parts[1] == PSEUDO_FOLDER


def look_alike_groups(images: list[ImageRecord]) -> dict[str, str]:
    """Which group each image belongs to: identical files and near-duplicates share one.

    Args:
        images: scan records; those with a ``look`` are compared by perceptual hash.

    Returns:
        ``{path: group key}``; the key is the smallest SHA-256 in the group, so it does not
        depend on listing order.
    """
    # the doctor's report and the split maker ask for the same folder's groups in a row: the
    # answer depends only on the files (paths and contents), so the last one is kept
    global _last_groups
    key = tuple((r.path, r.sha256, r.look is not None) for r in images)
    last = _last_groups  # read once: a scan thread may replace it
    if last[0] != key:
        last = _last_groups = (key, _look_alike_groups(images))
    return dict(last[1])


_last_groups: tuple = (None, {})


def _look_alike_groups(images: list[ImageRecord]) -> dict[str, str]:
    by_hash: dict[str, int] = {}
    hashes: list[str] = []
    for record in images:
        if record.sha256 not in by_hash:
            by_hash[record.sha256] = len(hashes)
            hashes.append(record.sha256)
    looked = {}
    for record in images:
        if record.look is not None:
            looked.setdefault(by_hash[record.sha256], record.look)
    order = sorted(looked)
    from tlstudio.core.data.looks import look_alike_labels  # (NumPy: only when a split is made)

    labels = look_alike_labels([looked[k] for k in order])
    members: dict[int, list[int]] = defaultdict(list)
    for position, label in enumerate(labels):
        members[int(label)].append(order[position])
    key = list(hashes)
    for group in members.values():
        smallest = min(hashes[k] for k in group)
        for k in group:
            key[k] = smallest
    return {r.path: key[by_hash[r.sha256]] for r in images}


def _target(total: int, fraction: float) -> int:
    if fraction <= 0:
        return 0
    return max(1, round(total * fraction))
