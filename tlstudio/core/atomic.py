"""Write a file so that a crash or a kill leaves either the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
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
