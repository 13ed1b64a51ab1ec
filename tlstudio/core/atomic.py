"""Write a file so that a crash or a kill leaves either the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_counter = itertools.count()


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that check it accept it) to
    write to; on success it is renamed over ``path``, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per process and call, so two writers of one file never write the same temp file
    tmp = path.with_name(f".tmp-{os.getpid()}-{next(_counter)}-{path.name}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entry list) to disk, where the system allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike[str], text: str, *, errors: str | None = None) -> Path:
    """UTF-8 text to a temporary file beside ``path``, then renamed over it."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors=errors)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: object) -> Path:
    """``data`` as indented JSON (non-JSON values as their ``str``), atomically."""
    return write_text(path, json.dumps(data, indent=2, default=str, ensure_ascii=False))


def staging_folder(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A new, uniquely named folder in ``parent`` to build something in before one rename puts it in
    place, with the permissions a plain ``mkdir`` gives (``mkdtemp``'s are owner-only, and they stayed
    on the folder once renamed: a server running as another user could not read an export).

    Args:
        parent: where the folder goes (the same file system as its final place).
        prefix: the start of its name.

    Returns:
        The folder.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    folder.chmod(0o777 & ~_umask())
    return folder


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
