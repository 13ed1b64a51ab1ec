"""Fix a label from the error gallery: move an image to another class folder, and back (undo);
label a new image: copy it into a class folder (the original stays), and take the copy back.

The split manifest follows the file: the entry keeps its content hash and its split (so a fix never
moves an image between train and test), and takes the new path and class. Both the move and the
manifest write are undone together.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from tlstudio.core.data.scan import class_folder, class_label, in_folder
from tlstudio.core.data.split import Manifest


class RelabelError(Exception):
    """The file cannot be moved (gone, or the target is taken)."""


@dataclass(frozen=True)
class Move:
    """One relabelling, enough to undo it."""

    old_path: str  # '/'-relative to the data folder
    new_path: str
    old_label: str
    new_label: str


def move_to_class(
    data_dir: str | os.PathLike[str],
    rel_path: str,
    new_class: str,
    *,
    manifest: Manifest | None = None,
    manifest_path: str | os.PathLike[str] | None = None,
) -> tuple[Move, Manifest | None]:
    """Move ``data_dir/rel_path`` into ``data_dir/new_class/`` (a free name is chosen if taken).

    The class is found by its name in Unicode NFC, so a folder copied from macOS (its name
    decomposed) takes the file instead of a look-alike new folder beside it.

    Returns:
        The move (for ``undo``) and the updated manifest (also saved to ``manifest_path``).

    Raises:
        RelabelError: the file is gone, is already in that class, or the class is no folder name.
    """
    src = in_folder(data_dir, rel_path)
    if not src.is_file():
        raise RelabelError(f"{rel_path} is not in {data_dir} any more")
    _check_name(new_class)
    old_label, new_label = class_label(rel_path.split("/", 1)[0]), class_label(new_class)
    if new_label == old_label:
        raise RelabelError(f"{rel_path} is already in {new_class}")
    folder = _real_folder(class_folder(data_dir, new_label))  # its name on disk, decomposed or not
    dst = free_name(folder / src.name)
    os.rename(src, dst)
    move = Move(rel_path, f"{folder.name}/{dst.name}", old_label, new_label)
    return move, _update(manifest, manifest_path, move.old_path, move.new_path, new_class)


def undo(
    data_dir: str | os.PathLike[str],
    move: Move,
    *,
    manifest: Manifest | None = None,
    manifest_path: str | os.PathLike[str] | None = None,
) -> Manifest | None:
    """Put the file back where it was and restore its manifest entry."""
    src, dst = in_folder(data_dir, move.new_path), in_folder(data_dir, move.old_path)
    if not src.is_file():
        raise RelabelError(f"{move.new_path} is not there any more: cannot undo")
    if dst.exists():
        raise RelabelError(f"{move.old_path} exists again: not overwriting it")
    os.rename(src, dst)
    return _update(manifest, manifest_path, move.new_path, move.old_path, move.old_label)


def copy_into_class(data_dir: str | os.PathLike[str], source: str | os.PathLike[str], label: str) -> str:
    """Copy an unlabelled image into ``data_dir/label/`` (a free name is chosen if taken).

    Args:
        data_dir: the data folder.
        source: the image; it stays where it is.
        label: the class folder (created when new).

    Returns:
        The copy's '/'-separated path relative to ``data_dir``.

    Raises:
        RelabelError: the source is gone, or the label is not a plain folder name.
    """
    src = Path(source)
    if not src.is_file():
        raise RelabelError(f"{source} is not there any more")
    _check_name(label)
    folder = _real_folder(class_folder(data_dir, label))
    dst = free_name(folder / src.name)
    shutil.copy2(src, dst)
    return f"{folder.name}/{dst.name}"


def _real_folder(folder: Path) -> Path:
    """``folder``, created when missing; a link is refused (it may lead out of the data folder)."""
    if folder.is_symlink():
        raise RelabelError(f"{folder.name} is a link to a folder: not followed (its images are not used)")
    folder.mkdir(exist_ok=True)
    return folder


def _check_name(label: str) -> None:
    """Refuse a class name that is not one plain folder name."""
    if not label or label in (".", "..") or "/" in label or "\\" in label or "\0" in label:
        raise RelabelError(f"'{label}' is not a class folder name")


def remove_copy(data_dir: str | os.PathLike[str], rel_path: str, source: str | os.PathLike[str]) -> None:
    """Undo ``copy_into_class``: delete the copy, but only while it still holds the source's bytes."""
    copy = in_folder(data_dir, rel_path)
    if not copy.is_file():
        raise RelabelError(f"{rel_path} is not there any more: cannot undo")
    if copy.read_bytes() != Path(source).read_bytes():
        raise RelabelError(f"{rel_path} has changed since it was copied: not deleting it")
    copy.unlink()


def _update(manifest, manifest_path, old: str, new: str, label: str) -> Manifest | None:
    if manifest is None:
        return None
    entries = tuple(replace(e, path=new, label=label) if e.path == old else e for e in manifest.entries)
    updated = Manifest(tuple(sorted(entries, key=lambda e: (e.label, e.path))))
    if manifest_path is not None:
        updated.save(manifest_path)
    return updated


def free_name(path: Path) -> Path:
    """``path``, or ``stem-1.ext``, ``stem-2.ext``… the first of them not taken."""
    n = 1
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate
