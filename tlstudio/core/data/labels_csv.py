"""A labels CSV (header ``path,labels``): images listed with any number of labels each, read and checked.

The CSV is the data source wherever a data folder is accepted. Paths are relative to the CSV's own
folder ('/'-separated), labels are joined by ``;`` and an empty field means "no label". The task kind
follows from the data alone: when every row has exactly one label it is an ordinary single-label
task (the same as a folder per class); when some row has several labels, or none, it is multi-label.
This module is the one source of that rule (``TaskKind``, ``task_of``) and of the file format.

Example:
    path,labels
    shop/001.jpg,shoe;bag
    shop/002.jpg,bag
    shop/003.jpg,
"""

from __future__ import annotations

import csv
import io
import os
import threading
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal, get_args

from tlstudio.core import atomic
from tlstudio.core.data.imagefile import DEFAULT_MAX_PIXELS
from tlstudio.core.data.scan import ImageRecord, ScanCancelled, ScanResult, check_image_file, in_folder

TaskKind = Literal["single_label", "multi_label"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)
HEADER = ("path", "labels")
SEPARATOR = ";"
MIN_LABEL_IMAGES = 2
"""A label needs at least this many images: one to learn from and one to check it on."""
_LISTED = 3


class LabelsCsvError(ValueError):
    """The labels CSV cannot be used; the message is one line saying where and why."""


@dataclass(frozen=True)
class LabelsTable:
    """The rows of a labels CSV, checked: paths relative to ``root`` and each row's sorted labels."""

    csv_path: Path
    rows: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def root(self) -> Path:
        """The folder the paths are relative to (the CSV's own)."""
        return self.csv_path.parent

    @property
    def labels(self) -> list[str]:
        """Every label, sorted (the model's output order)."""
        return sorted({label for _, labels in self.rows for label in labels})

    @property
    def task(self) -> TaskKind:
        """``task_of`` these rows."""
        return task_of(labels for _, labels in self.rows)

    def counts(self) -> dict[str, int]:
        """Images per label."""
        counts = Counter(label for _, labels in self.rows for label in labels)
        return {label: counts[label] for label in self.labels}


def task_of(label_sets) -> TaskKind:
    """``multi_label`` when some image has several labels or none, else ``single_label``.

    Args:
        label_sets: each image's labels.
    """
    return "single_label" if all(len(labels) == 1 for labels in label_sets) else "multi_label"


def is_labels_csv(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a CSV file (by its name: a ``.csv`` that is a file)."""
    return Path(path).suffix.lower() == ".csv" and Path(path).is_file()


def data_root(path: str | os.PathLike[str]) -> Path:
    """The folder a data source's image paths are relative to: a CSV's folder, or the folder itself."""
    return Path(path).parent if is_labels_csv(path) else Path(path)


def data_source_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is neither a data folder nor a labels CSV, or None (the CSV is not read yet)."""
    path = Path(path)
    if path.is_dir() or is_labels_csv(path):
        return None
    if path.suffix.lower() == ".csv":
        return f"{path} is not there (a labels CSV: path,labels)"
    return f"{path} is not a folder or a labels CSV (path,labels)"


def read_labels_csv(
    path: str | os.PathLike[str], *, check_files: bool = True, training: bool = True
) -> LabelsTable:
    """Read and check a labels CSV.

    Args:
        path: the CSV file.
        check_files: also refuse rows whose file is not there.
        training: also refuse fewer than two labels, or a label with fewer than ``MIN_LABEL_IMAGES``
            images (data to evaluate on may have a label once).

    Returns:
        The checked rows.

    Raises:
        LabelsCsvError: with a one-line reason (the first problem found, and how many like it).
    """
    csv_path = Path(path)
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise LabelsCsvError(f"{csv_path} cannot be read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise LabelsCsvError(f"{csv_path} is not UTF-8 text (byte {err.start})") from err
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise LabelsCsvError(f"{csv_path}: not a CSV file: {err}") from err
    if not table or tuple(cell.strip().lower() for cell in table[0]) != HEADER:
        got = ",".join(table[0]) if table else "an empty file"
        raise LabelsCsvError(f"{csv_path}: the first line must be the header path,labels (found {got})")
    root_real = os.path.realpath(csv_path.parent)
    rows: list[tuple[str, tuple[str, ...]]] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        where = f"{csv_path}, line {number}"
        if len(row) != 2:
            raise LabelsCsvError(f"{where}: expected 2 fields (path,labels), found {len(row)}")
        rel = _relative_path(row[0], where, csv_path.parent, root_real)
        key = unicodedata.normalize("NFC", rel)
        if key in seen:
            raise LabelsCsvError(
                f"{where}: {rel} is listed twice (also on line {seen[key]}): one row per image"
            )
        seen[key] = number
        rows.append((rel, _labels(row[1], where)))
    if not rows:
        raise LabelsCsvError(f"{csv_path} lists no images (one row per image after the header)")
    if check_files:
        missing = [rel for rel, _ in rows if not in_folder(csv_path.parent, rel).is_file()]
        if missing:
            raise LabelsCsvError(f"{csv_path}: {_some(missing)} not there (paths are relative to its folder)")
    result = LabelsTable(csv_path, tuple(rows))
    if not training:
        return result
    counts = result.counts()
    if len(counts) < 2:
        raise LabelsCsvError(f"{csv_path}: found {len(counts)} label(s); at least two are needed")
    few = [label for label, n in counts.items() if n < MIN_LABEL_IMAGES]
    if few:
        raise LabelsCsvError(
            f"{csv_path}: label(s) {_some(few, quote=True)} have fewer than {MIN_LABEL_IMAGES} images: "
            "too few to learn and check (add images or remove the label)"
        )
    return result


def scan_labels_csv(
    path: str | os.PathLike[str],
    *,
    deep: bool = False,
    looks: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    on_progress=None,
    stop: threading.Event | None = None,
) -> tuple[LabelsTable, ScanResult]:
    """Read the CSV and check every image it lists, as ``scan_folder`` checks a folder's.

    Each record's ``label`` is the image's labels joined by ``SEPARATOR`` ('' for none).

    Raises:
        LabelsCsvError: bad CSV, or files listed that are missing or cannot be read as images.
        ScanCancelled: ``stop`` was set.
    """
    table = read_labels_csv(path)
    root = table.root
    result = ScanResult(root=str(root), class_folders=table.labels)
    unreadable: list[str] = []
    with ThreadPoolExecutor(max_workers=workers or 4, thread_name_prefix="tlstudio-scan") as pool:
        for start in range(0, len(table.rows), 256):
            if stop is not None and stop.is_set():
                raise ScanCancelled(f"scan of {path} cancelled after {start} of {len(table.rows)} files")
            batch = table.rows[start : start + 256]
            outcomes = pool.map(
                lambda r: check_image_file(
                    in_folder(root, r[0]),
                    r[0],
                    SEPARATOR.join(r[1]),
                    deep=deep,
                    looks=looks,
                    max_pixels=max_pixels,
                ),
                batch,
            )
            for outcome in outcomes:
                if isinstance(outcome, ImageRecord):
                    result.images.append(outcome)
                else:
                    unreadable.append(f"{outcome.path} ({outcome.reason})")
            if on_progress is not None:
                on_progress(min(start + 256, len(table.rows)), len(table.rows))
    if unreadable:
        raise LabelsCsvError(
            f"{path}: {_some(unreadable)} cannot be read as images: fix or remove those rows"
        )
    result.images.sort(key=lambda r: (r.label, r.path))
    return table, result


def write_labels_csv(path: str | os.PathLike[str], rows) -> Path:
    """Write rows as a labels CSV, atomically (a kill leaves the old file or the new one, never half).

    Args:
        path: the CSV file.
        rows: ``(path, labels)`` pairs, paths '/'-relative to the CSV's folder.

    Returns:
        The path written.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for rel, labels in rows:
        writer.writerow((rel, SEPARATOR.join(labels)))
    return atomic.write_text(path, buf.getvalue())


def label_sets(records) -> list[tuple[str, ...]]:
    """Each record's (or manifest entry's) labels, from its joined ``label``."""
    return [tuple(r.label.split(SEPARATOR)) if r.label else () for r in records]


def cooccurrence(sets: list[tuple[str, ...]], labels: list[str]) -> dict[str, dict[str, int]]:
    """How many images carry each pair of labels (the diagonal: each label's own count)."""
    out = {a: dict.fromkeys(labels, 0) for a in labels}
    for labels_of in sets:
        for a in labels_of:
            for b in labels_of:
                out[a][b] += 1
    return out


def _relative_path(cell: str, where: str, root: Path, root_real: str) -> str:
    rel = cell.strip()
    if not rel:
        raise LabelsCsvError(f"{where}: the path is empty")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise LabelsCsvError(f"{where}: {rel} is an absolute path; paths are relative to the CSV's folder")
    rel = rel.replace("\\", "/")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    target = os.path.realpath(in_folder(root, "/".join(parts)))
    try:
        inside = os.path.commonpath([target, root_real]) == root_real
    except ValueError:
        inside = False
    if ".." in parts or not inside or not parts:
        raise LabelsCsvError(f"{where}: {cell.strip()} leads outside the CSV's folder")
    return "/".join(parts)


def _labels(cell: str, where: str) -> tuple[str, ...]:
    if not cell.strip():
        return ()
    labels = [unicodedata.normalize("NFC", part.strip()) for part in cell.split(SEPARATOR)]
    if any(not label for label in labels):
        raise LabelsCsvError(f"{where}: an empty label in {cell!r} (labels are joined by {SEPARATOR!r})")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for label in labels for ch in label):
        raise LabelsCsvError(f"{where}: a label holds a control character (a tab, a newline…)")
    if len(set(labels)) != len(labels):
        raise LabelsCsvError(f"{where}: a label is repeated in {cell!r}")
    return tuple(sorted(labels))


def _some(items: list[str], *, quote: bool = False) -> str:
    shown = [f"'{x}'" if quote else x for x in items[:_LISTED]]
    more = f" and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return ", ".join(shown) + more
