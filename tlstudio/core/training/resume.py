"""Where a run is, saved after every epoch so that a killed run can continue: ``--resume``.

``checkpoints/last.weights.h5`` holds the weights at the end of the last finished epoch,
``checkpoints/probe.weights.h5`` the linear probe's (for WiSE-FT), and ``checkpoints/last.json`` the
phase, the epoch, where the phase began, the best value so far and whether the recipe escalated.
On resume the interrupted phase continues from the next epoch with its learning-rate schedule at
the same step; the optimizer's moment estimates start afresh (they are not saved), so a resumed run
is comparable to an uninterrupted one, not bit-identical.

Before a run resumes, every file of its split is read again and hashed (``check_files``): a file
missing, unreadable or whose bytes differ from ``manifest.csv``'s SHA-256 (replaced by another
image, truncated, re-encoded) refuses the resume with one line naming the files
(``refusal_before_resume``), recorded in ``run.json`` as ``resume_refused`` — a resumed run uses
exactly the bytes its split and its record describe, or it does not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tlstudio.core import atomic
from tlstudio.core import events as ev
from tlstudio.core.data.scan import file_sha256, in_folder
from tlstudio.core.data.split import Manifest
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_folder import LAST_WEIGHTS, RunFolderError, claim

if TYPE_CHECKING:
    from tlstudio.core.training.session import RunResult, TrainingSession

PROBE_WEIGHTS = "probe.weights.h5"
LAST_STATE = "last.json"


@dataclass
class ResumeState:
    """What ``last.json`` records."""

    phase: int  # index in the recipe
    epoch: int  # the last finished epoch (absolute)
    phase_first_epoch: int
    best: float
    best_epoch: int | None
    phase_done: bool
    escalated: bool = False


def save(folder: Path, model, state: ResumeState) -> None:
    """Write the weights, then the state that points at them (both atomically)."""
    with atomic.replacing(folder / LAST_WEIGHTS) as tmp:
        model.save_weights(tmp)
    atomic.write_json(folder / LAST_STATE, asdict(state))


def save_probe(folder: Path, model) -> None:
    """The probe's weights, for interpolation after a resumed fine-tune phase."""
    with atomic.replacing(folder / PROBE_WEIGHTS) as tmp:
        model.save_weights(tmp)


def load(folder: Path) -> ResumeState | None:
    """The saved state, or None when the run never finished an epoch."""
    path = folder / LAST_STATE
    if not path.is_file() or not (folder / LAST_WEIGHTS).is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["best"] = float(data["best"]) if data.get("best") is not None else float("inf")
    return ResumeState(**data)


SHOWN = 3  # files named in a one-line message; the rest are counted
CHECKING = "checking the split's files against manifest.csv"
WHAT_TO_DO = (
    "put the original files back and resume again, or start a new run on the folder as it is now "
    "(a new split)"
)


@dataclass(frozen=True)
class FileCheck:
    """What reading a split's files again found (paths relative to the data folder, in manifest order)."""

    missing: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # bytes differ from the manifest's SHA-256 (a truncated file too)
    unreadable: tuple[str, ...] = ()  # there, but reading it failed (permissions, I/O error)

    @property
    def ok(self) -> bool:
        """True when every file is there with the bytes the split recorded."""
        return not (self.missing or self.changed or self.unreadable)

    def files(self) -> list[dict[str, str]]:
        """Every file found wrong, as ``{"path", "problem"}``."""
        kinds = (
            (self.changed, "changed since the split"),
            (self.missing, "missing"),
            (self.unreadable, "unreadable"),
        )
        return [{"path": p, "problem": problem} for paths, problem in kinds for p in paths]

    def describe(self, data_dir: str | os.PathLike[str]) -> str:
        """One line: how many files are wrong under ``data_dir``, the first few of each kind named.

        Example:
            ``2 file(s) of the split are not as its manifest recorded them under data: 1 changed
            since the split (cat/a.png), 1 missing (dog/b.png)``
        """
        kinds = (
            ("changed since the split", self.changed),
            ("missing", self.missing),
            ("unreadable", self.unreadable),
        )
        parts = [f"{len(paths)} {kind} ({_some(paths)})" for kind, paths in kinds if paths]
        total = len(self.missing) + len(self.changed) + len(self.unreadable)
        return (
            f"{total} file(s) of the split are not as its manifest recorded them under {data_dir}: "
            + ", ".join(parts)
        )


def _some(paths: tuple[str, ...]) -> str:
    more = len(paths) - SHOWN
    return ", ".join(paths[:SHOWN]) + (f" and {more} more" if more > 0 else "")


_last_clean: tuple = ()  # (data folder, manifest fingerprint, the files' stat) of the last clean check


def check_files(
    manifest: Manifest,
    root: str | os.PathLike[str],
    *,
    hashes: bool = True,
    on_event: Callable[[ev.Working], None] | None = None,
) -> FileCheck:
    """Read every file a manifest names under ``root`` again: is it there, with the same bytes?

    A check that found nothing wrong is not repeated in the same process while every file keeps
    its size, modification time and inode (the CLI checks before TensorFlow loads, then the
    session checks again).

    Args:
        manifest: the split (paths relative to ``root`` and their SHA-256).
        root: the data folder.
        hashes: compare each file's SHA-256 too (False: only whether it is there).
        on_event: told ``Working(CHECKING, done, total)`` at the start, about twice a second while
            hashing, and at the end.

    Returns:
        The files missing, changed or unreadable.
    """
    global _last_clean
    report = on_event if (on_event is not None and hashes) else (lambda event: None)
    missing, changed, unreadable, stats = [], [], [], []
    total, last = len(manifest.entries), time.monotonic()
    key = (str(Path(root).resolve()), manifest.fingerprint())
    for e in manifest.entries:
        try:
            st = os.stat(in_folder(root, e.path))
            stats.append((st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
        except OSError:
            stats.append(None)
    if hashes and _last_clean == (*key, stats):
        return FileCheck()
    report(ev.Working(CHECKING, 0, total))
    for done, (e, st) in enumerate(zip(manifest.entries, stats, strict=True), start=1):
        file = in_folder(root, e.path)
        if st is None or not file.is_file():
            missing.append(e.path)
            continue
        try:
            if hashes and file_sha256(file) != e.sha256:
                changed.append(e.path)
        except OSError:
            unreadable.append(e.path)
        if time.monotonic() - last > 0.5:
            report(ev.Working(CHECKING, done, total))
            last = time.monotonic()
    report(ev.Working(CHECKING, total, total))
    check = FileCheck(tuple(missing), tuple(changed), tuple(unreadable))
    if hashes and check.ok:
        _last_clean = (*key, stats)
    return check


@dataclass(frozen=True)
class Refusal:
    """Why a run cannot resume: one line, and the files behind it (``FileCheck.files``)."""

    message: str
    files: list[dict[str, str]]


def refusal_before_resume(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    on_event: Callable[[ev.Working], None] | None = None,
) -> Refusal | None:
    """Whether the run in ``run_dir`` may resume on ``data_dir``: None when every file of its
    split is there with the bytes ``manifest.csv`` records (see ``check_files``), else why not.

    Example:
        >>> refusal = refusal_before_resume("runs/first", "my_data")
        >>> refusal.message if refusal else "ok"
    """
    try:
        manifest = Manifest.load(Path(run_dir) / files.MANIFEST)
    except (OSError, ValueError) as err:
        return Refusal(f"the run's split cannot be read: {err}", [])
    check = check_files(manifest, data_dir, on_event=on_event)
    if check.ok:
        return None
    message = (
        f"{check.describe(data_dir)}. A resumed run would use them under the split's labels: {WHAT_TO_DO}"
    )
    return Refusal(message, check.files())


def record_refusal(run_dir: str | os.PathLike[str], refusal: Refusal) -> None:
    """Add the refusal to ``run.json`` (as ``resume_refused``), its status untouched: the run stays
    resumable once the files are back. Call it holding the run folder's lock; a missing or
    unreadable ``run.json`` is left alone."""
    path = Path(run_dir) / files.RUN_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data["resume_refused"] = {
                "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "message": refusal.message,
                "files": refusal.files,
            }
            atomic.write_json(path, data)
    except (OSError, ValueError):
        return


def refuse_resume(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    on_event: Callable[[ev.Working], None] | None = None,
) -> str | None:
    """``refusal_before_resume`` for a caller that does not hold the run folder (the CLI, before
    TensorFlow loads): its one line, recorded in run.json under the folder's lock; None when the
    run may resume. A folder a live process holds is not written to (that run records itself)."""
    refusal = refusal_before_resume(run_dir, data_dir, on_event)
    if refusal is None:
        return None
    with contextlib.suppress(RunFolderError):
        lock = claim(run_dir, resume=True)
        record_refusal(run_dir, refusal)
        lock.release()
    return refusal.message


def refuse_changed_files(session: TrainingSession) -> RunResult | None:
    """For a session about to resume (its run folder claimed, nothing written yet): a failed result
    that records nothing but ``resume_refused`` in run.json, with ``RunFailed`` saying which files
    and what to do, when ``refusal_before_resume`` finds any; else None. The result is ``primary``:
    the run stays in its project, where run.json still reads as interrupted, so Resume is offered
    again once the files are back."""
    from tlstudio.core.training.run_outcome import RunResult

    atomic.clean_stale_temps(Path(session.run_dir) / files.CHECKPOINTS)  # a killed run's half-written files
    refusal = refusal_before_resume(session.run_dir, session.data_dir, session.emit)
    if refusal is None:
        return None
    record_refusal(session.run_dir, refusal)
    session.emit(ev.RunFailed(str(session.run_dir), refusal.message, WHAT_TO_DO, None))
    return RunResult("failed", session.run_dir, error=refusal.message)
