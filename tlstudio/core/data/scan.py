"""Scan a folder of images laid out as one sub-folder per class.

Every file is sniffed by content (never by extension), hashed, and either recorded as a usable
image or listed as skipped with a reason. Only headers are read unless a check needs more, and
work is streamed in bounded batches so memory stays flat however large the folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tlstudio.core.cancel import Cancelled

if TYPE_CHECKING:
    from tlstudio.core.data.looks import Look
from tlstudio.core.data.imagefile import DEFAULT_MAX_PIXELS, ImageProblem, probe_image

SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
SYSTEM_FOLDERS = frozenset({"__macosx", "$recycle.bin", "system volume information", "@eadir"})
_BATCH = 256
LINKED_FOLDER = "linked folder, not followed (a link can lead out of the data folder or into a loop)"
OUTSIDE_LINK = "link to a file outside the data folder, not followed"
STAGING_FOLDER = ".tlstudio-staging"
"""``STAGING_FOLDER-PID-…``: where ``suggest --pseudo-label`` builds its copies before moving them in."""
PSEUDO_RECORD = ".tlstudio-pseudo-labels.json"
"""The record of every pseudo-label copy made into a data folder."""
INTERRUPTED_STAGING = (
    "pseudo-label copies being made, or interrupted: not used; the next `tlstudio suggest "
    "--pseudo-label` on this folder completes or removes them"
)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ImageRecord:
    """A usable image: where it is, its class, its content hash and header facts."""

    path: str  # relative to the dataset root, '/'-separated
    label: str
    sha256: str
    format: str
    width: int
    height: int
    mode: str
    size_bytes: int
    frames: int = 1
    exif_orientation: int = 1
    look: Look | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SkippedFile:
    """A file or folder that was not used, and why."""

    path: str
    reason: str


@dataclass
class ScanResult:
    """Raw outcome of a scan: usable images, skipped entries and the class folders seen."""

    root: str
    images: list[ImageRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    class_folders: list[str] = field(default_factory=list)


def scan_folder(
    root: str | os.PathLike[str],
    *,
    deep: bool = False,
    looks: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> ScanResult:
    """Scan ``root`` (one sub-folder per class) and check every file in it.

    Args:
        root: the dataset folder.
        deep: decode every image fully (slower) instead of header and structure checks.
        looks: also decode a small version of each image for its perceptual hash and quality
            measures (``looks.Look``: near-duplicates, dark, bright, blurred images).
        max_pixels: larger images are refused without being decoded.
        workers: threads for reading files; defaults to a small multiple of the CPU count.
        on_progress: called as ``on_progress(done, total)`` after each batch of files.
        stop: set it to cancel the scan (checked between batches).

    Raises:
        NotADirectoryError: if ``root`` is not a folder.
        ScanCancelled: ``stop`` was set.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    result = ScanResult(root=str(root_path))
    root_real = os.path.realpath(root_path)
    candidates: list[tuple[Path, str, str]] = []  # (absolute path, relative path, label)
    for entry in sorted(os.scandir(root_path), key=lambda e: e.name):
        rel = entry.name
        if entry.name == PSEUDO_RECORD:
            continue  # TL Studio's record of pseudo-labels: no image, no class
        if entry.name.startswith(STAGING_FOLDER + "-"):
            result.skipped.append(SkippedFile(rel, INTERRUPTED_STAGING))
        elif _is_hidden(entry.name):
            kind = "folder" if entry.is_dir(follow_symlinks=False) else "file"
            result.skipped.append(SkippedFile(rel, f"hidden {kind}, ignored"))
        elif entry.is_symlink() and entry.is_dir():  # never followed: `ln -s ..` or `ln -s /etc`
            result.skipped.append(SkippedFile(rel, LINKED_FOLDER))
        elif entry.is_dir():
            if entry.name.lower() in SYSTEM_FOLDERS:
                result.skipped.append(SkippedFile(rel, "system folder, ignored"))
                continue
            label = class_label(entry.name)
            if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in label):
                result.skipped.append(
                    SkippedFile(
                        rel,
                        "class folder name holds a control character (a newline, tab…): labels.txt has "
                        "one class per line, so rename the folder",
                    )
                )
                continue
            result.class_folders.append(label)
            for abs_path, rel_path, reason in _walk_class(Path(entry.path), rel, root_real):
                if reason:
                    result.skipped.append(SkippedFile(rel_path, reason))
                else:
                    candidates.append((abs_path, rel_path, label))
        else:
            reason = _special_file_reason(entry) or "not inside a class folder, ignored"
            result.skipped.append(SkippedFile(rel, reason))

    total = len(candidates)
    n_workers = workers or 4  # I/O overlap; more threads only add GIL contention
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="tlstudio-scan") as pool:
        for start in range(0, total, _BATCH):
            if stop is not None and stop.is_set():
                raise ScanCancelled(f"scan of {root} cancelled after {start} of {total} files")
            batch = candidates[start : start + _BATCH]
            for outcome in pool.map(
                lambda c: _check_file(*c, deep=deep, looks=looks, max_pixels=max_pixels), batch
            ):
                if isinstance(outcome, ImageRecord):
                    result.images.append(outcome)
                else:
                    result.skipped.append(outcome)
            if on_progress is not None:
                on_progress(min(start + _BATCH, total), total)
    result.images.sort(key=lambda r: (r.label, r.path))
    result.skipped.sort(key=lambda s: s.path)
    return result


def scan_unlabelled(
    folder: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS, workers: int | None = None
) -> ScanResult:
    """Check every file under a folder of images that have no class yet (sub-folders included).

    Args:
        folder: the folder.
        max_pixels: larger images are refused undecoded.
        workers: reader threads.

    Returns:
        The usable images (``label`` empty; paths relative to ``folder``) and the skipped files.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    result = ScanResult(root=str(root))
    candidates = []
    for abs_path, rel, reason in _walk_class(root, "", os.path.realpath(root)):
        rel = rel.lstrip("/")
        if reason:
            result.skipped.append(SkippedFile(rel, reason))
        else:
            candidates.append((abs_path, rel, ""))
    with ThreadPoolExecutor(max_workers=workers or 4, thread_name_prefix="tlstudio-scan") as pool:
        for outcome in pool.map(
            lambda c: _check_file(*c, deep=False, looks=False, max_pixels=max_pixels), candidates
        ):
            (result.images if isinstance(outcome, ImageRecord) else result.skipped).append(outcome)
    result.images.sort(key=lambda r: r.path)
    result.skipped.sort(key=lambda x: x.path)
    return result


class ScanCancelled(Cancelled):
    """The scan was cancelled (``scan_folder(stop=...)``)."""


def in_folder(root: str | os.PathLike[str], relative: str) -> Path:
    """The file a '/'-separated path relative to ``root`` (as records and manifests store it) names."""
    return Path(root, *relative.split("/"))


def class_label(name: str) -> str:
    """The class a folder name stands for: the name in Unicode NFC, so a folder copied from macOS
    (which writes names decomposed, NFD) is the same class as the one typed on another system."""
    return unicodedata.normalize("NFC", name)


def class_folder(root: str | os.PathLike[str], label: str) -> Path:
    """The folder of class ``label`` in ``root``: the one whose name is ``label`` in NFC, spelled
    as it is on disk (decomposed, say), else ``root/label`` in NFC (not created).

    Example:
        >>> class_folder("data", "café")  # data/cafe\u0301 when the folder was copied from a Mac
    """
    want = class_label(label)
    exact = Path(root, want)
    if exact.is_dir() or exact.is_symlink():
        return exact
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if class_label(entry.name) == want and entry.is_dir(follow_symlinks=False):
                    return Path(entry.path)
    except OSError:
        pass
    return exact


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _walk_class(folder: Path, rel_folder: str, root_real: str) -> Iterator[tuple[Path, str, str]]:
    """Yield (path, relative path, skip reason or '') for every file under a class folder (inside
    ``root_real``, the data folder's real path: linked folders are not followed, links to files
    outside it are skipped)."""
    stack = [(folder, rel_folder)]
    while stack:
        current, rel_current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as err:
            yield current, rel_current, f"cannot read folder: {err.strerror or err}"
            continue
        for entry in entries:
            rel = f"{rel_current}/{entry.name}"
            if _is_hidden(entry.name):
                kind = "folder" if entry.is_dir(follow_symlinks=False) else "file"
                yield Path(entry.path), rel, f"hidden {kind}, ignored"
            elif entry.is_dir(follow_symlinks=False):
                if entry.name.lower() in SYSTEM_FOLDERS:
                    yield Path(entry.path), rel, "system folder, ignored"
                else:
                    stack.append((Path(entry.path), rel))
            elif entry.name.lower() in SYSTEM_FILES:
                yield Path(entry.path), rel, "system file, ignored"
            else:
                reason = _special_file_reason(entry)
                if not reason and entry.is_symlink():
                    reason = _outside_reason(entry, root_real)
                yield Path(entry.path), rel, reason


def _outside_reason(entry: os.DirEntry[str], root_real: str) -> str:
    """'' for a link whose target is inside the data folder, else why it is skipped."""
    target = os.path.realpath(entry.path)
    try:
        inside = os.path.commonpath([target, root_real]) == root_real
    except ValueError:  # another drive (Windows)
        inside = False
    return "" if inside else OUTSIDE_LINK


def _special_file_reason(entry: os.DirEntry[str]) -> str:
    """'' for a regular file (or a link to one), else why it cannot be read as an image."""
    try:
        mode = entry.stat(follow_symlinks=True).st_mode
    except FileNotFoundError:
        return "broken link, ignored"
    except OSError as err:
        return f"cannot read: {err.strerror or err}"
    if stat.S_ISDIR(mode):
        return LINKED_FOLDER
    if not stat.S_ISREG(mode):
        return "not a regular file, ignored"
    return ""


def check_image_file(
    abs_path: Path, rel_path: str, label: str, *, deep: bool, looks: bool, max_pixels: int
) -> ImageRecord | SkippedFile:
    """Check one file as the scan does: its record when it is a usable image, else why not.

    Args:
        abs_path: the file.
        rel_path: its '/'-separated path relative to the data root.
        label: what the record's ``label`` holds.
        deep: decode it fully.
        looks: also compute its ``Look``.
        max_pixels: larger images are refused undecoded.
    """
    return _check_file(abs_path, rel_path, label, deep=deep, looks=looks, max_pixels=max_pixels)


def _check_file(abs_path: Path, rel_path: str, label: str, *, deep: bool, looks: bool, max_pixels: int):
    from tlstudio.core.data.looks import look_at  # (NumPy: loaded by the first scan, not with the window)

    try:
        info = probe_image(abs_path, max_pixels=max_pixels, deep=deep)
        look = look_at(abs_path, max_pixels=max_pixels) if looks else None
        digest = file_sha256(abs_path)
        size = abs_path.stat().st_size
    except ImageProblem as problem:
        return SkippedFile(rel_path, str(problem))
    except OSError as err:
        return SkippedFile(rel_path, f"cannot read the file: {err.strerror or err}")
    return ImageRecord(
        path=rel_path,
        label=label,
        sha256=digest,
        format=info.format,
        width=info.width,
        height=info.height,
        mode=info.mode,
        size_bytes=size,
        frames=info.frames,
        exif_orientation=info.exif_orientation,
        look=look,
    )


def _is_hidden(name: str) -> bool:
    return name.startswith(".")
