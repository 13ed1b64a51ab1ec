"""Fix the labels of an image listed in a labels CSV, and add a newly labelled image to one; each undoable.

The CSV is read again before every change and written back atomically (``labels_csv.write_labels_csv``),
so a change never works on a stale copy and a kill never leaves half a file. A fix refuses when the
row's labels are no longer those the fix was computed from (the CSV was edited meanwhile). The split
manifest follows a fix: the entry keeps its path, hash and split, and takes the new labels.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from tlstudio.core.data.labels_csv import SEPARATOR, LabelsCsvError, read_labels_csv, write_labels_csv
from tlstudio.core.data.relabel import RelabelError, free_name
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import Manifest

ADDED_FOLDER = "added"
"""Where an image labelled from outside the CSV's folder is copied to (inside that folder)."""


@dataclass(frozen=True)
class LabelChange:
    """One change to a labels CSV, enough to undo it."""

    path: str  # '/'-relative to the CSV's folder
    old: tuple[str, ...] | None  # None: the row was added
    new: tuple[str, ...]
    copied_from: str | None = None  # an added image copied into the CSV's folder from here


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot be written to a labels CSV, or None."""
    if not label.strip() or label != label.strip():
        return f"'{label}' is empty or starts or ends with a space"
    if SEPARATOR in label:
        return f"'{label}' holds the separator {SEPARATOR!r}"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in label):
        return f"'{label}' holds a control character"
    return None


def set_labels(
    csv_path: str | os.PathLike[str],
    rel_path: str,
    labels,
    *,
    expected=None,
    manifest: Manifest | None = None,
    manifest_path: str | os.PathLike[str] | None = None,
) -> tuple[LabelChange, Manifest | None]:
    """Give the image ``rel_path`` of a labels CSV these labels (an empty set: no label).

    Args:
        csv_path: the labels CSV.
        rel_path: the image's path as the CSV lists it.
        labels: its new labels.
        expected: its labels the change was decided on; refused when the CSV says otherwise now.
        manifest: the project's split, to follow the change.
        manifest_path: where to save the updated split.

    Returns:
        The change (for ``undo_change``) and the updated manifest (also saved to ``manifest_path``).

    Raises:
        RelabelError: the CSV cannot be read, does not list the image, lists other labels for it than
            ``expected``, or a label cannot be written.
    """
    new = _checked(labels)
    rows = _rows(csv_path)
    index = _find(rows, rel_path, csv_path)
    old = rows[index][1]
    if expected is not None and tuple(sorted(expected)) != old:
        raise RelabelError(
            f"{rel_path} is labelled {_named(old)} in {Path(csv_path).name} now, not {_named(expected)}: "
            "check the labels again"
        )
    if new == old:
        raise RelabelError(f"{rel_path} already has the labels {_named(new)}")
    rows[index] = (rows[index][0], new)
    write_labels_csv(csv_path, rows)
    change = LabelChange(rows[index][0], old, new)
    return change, _follow(manifest, manifest_path, change.path, new)


def undo_change(
    csv_path: str | os.PathLike[str],
    change: LabelChange,
    *,
    manifest: Manifest | None = None,
    manifest_path: str | os.PathLike[str] | None = None,
) -> Manifest | None:
    """Undo ``set_labels`` (the old labels back) or ``add_image`` (the row removed, and the copy deleted
    while it still holds the source's bytes)."""
    rows = _rows(csv_path)
    index = _find(rows, change.path, csv_path)
    if rows[index][1] != change.new:
        raise RelabelError(f"{change.path} has other labels now ({_named(rows[index][1])}): not undone")
    if change.old is None:
        if change.copied_from is not None:
            copy = in_folder(Path(csv_path).parent, change.path)
            if copy.is_file() and copy.read_bytes() != Path(change.copied_from).read_bytes():
                raise RelabelError(f"{change.path} has changed since it was copied: not deleting it")
            copy.unlink(missing_ok=True)
        del rows[index]
        write_labels_csv(csv_path, rows)
        return manifest
    rows[index] = (rows[index][0], change.old)
    write_labels_csv(csv_path, rows)
    return _follow(manifest, manifest_path, change.path, change.old)


def add_image(csv_path: str | os.PathLike[str], source: str | os.PathLike[str], labels) -> LabelChange:
    """List a newly labelled image in a labels CSV: a file inside the CSV's folder gets a row as it is;
    one outside is first copied into ``ADDED_FOLDER`` there (a free name is chosen; the original stays).

    Args:
        csv_path: the labels CSV.
        source: the image.
        labels: its labels (an empty set: none).

    Returns:
        The change (``undo_change`` removes the row, and the copy).

    Raises:
        RelabelError: the image is gone or already listed, the CSV cannot be read, or a label cannot be
            written.
    """
    new = _checked(labels)
    src = Path(source)
    if not src.is_file():
        raise RelabelError(f"{source} is not there any more")
    rows = _rows(csv_path)
    root = Path(csv_path).parent
    real_root, real_src = os.path.realpath(root), os.path.realpath(src)
    copied_from = None
    if os.path.commonpath([real_src, real_root]) == real_root:
        rel = Path(os.path.relpath(real_src, real_root)).as_posix()
        if any(_same(path, rel) for path, _ in rows):
            raise RelabelError(f"{rel} is already listed in {Path(csv_path).name}")
    else:
        folder = root / ADDED_FOLDER
        folder.mkdir(exist_ok=True)
        dst = free_name(folder / src.name)
        shutil.copy2(src, dst)
        rel, copied_from = f"{ADDED_FOLDER}/{dst.name}", str(src)
    try:
        write_labels_csv(csv_path, [*rows, (rel, new)])
    except OSError:
        if copied_from is not None:
            in_folder(root, rel).unlink(missing_ok=True)
        raise
    return LabelChange(rel, None, new, copied_from)


def _checked(labels) -> tuple[str, ...]:
    new = tuple(sorted({unicodedata.normalize("NFC", str(label)) for label in labels}))
    for label in new:
        if (why := label_problem(label)) is not None:
            raise RelabelError(why)
    return new


def _rows(csv_path) -> list[tuple[str, tuple[str, ...]]]:
    try:
        return list(read_labels_csv(csv_path, check_files=False, training=False).rows)
    except LabelsCsvError as err:
        raise RelabelError(str(err)) from err


def _same(a: str, b: str) -> bool:
    return unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


def _find(rows, rel_path: str, csv_path) -> int:
    for index, (path, _) in enumerate(rows):
        if _same(path, rel_path):
            return index
    raise RelabelError(f"{rel_path} is not listed in {Path(csv_path).name} any more")


def _named(labels) -> str:
    return ", ".join(sorted(labels)) or "(none)"


def _follow(manifest, manifest_path, rel_path: str, labels: tuple[str, ...]) -> Manifest | None:
    if manifest is None:
        return None
    entries = tuple(
        replace(e, label=SEPARATOR.join(labels)) if _same(e.path, rel_path) else e for e in manifest.entries
    )
    updated = replace(manifest, entries=entries)
    if manifest_path is not None:
        updated.save(manifest_path)
    return updated
