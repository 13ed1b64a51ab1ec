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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (True when that cannot be told: a file
    of a live writer is never taken for a leftover)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.GetLastError() == 5  # type: ignore[attr-defined]  # (Windows only) denied: it exists
        code = ctypes.c_ulong()
        try:
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        finally:
            kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # not ours to signal (another user's), or cannot tell
        return True
    return True


def temp_owner(name: str) -> int | None:
    """The process id in a temporary file's name as ``replacing`` makes it (``.tmp-PID-N-name``),
    or None for any other name."""
    parts = name.split("-", 3)
    if len(parts) == 4 and parts[0] == ".tmp" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1])
    return None


def clean_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files ``replacing`` left in ``folder`` when its process was killed (their
    process is gone); a live writer's temp file, and every other file, is left alone.

    Args:
        folder: e.g. a run's checkpoints folder; a missing folder is nothing to clean.

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = temp_owner(entry.name)
        if pid is None or pid_alive(pid) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
