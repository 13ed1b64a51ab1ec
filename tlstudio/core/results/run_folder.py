"""A run folder has one owner: claiming it, locking it against a second process, reading its truth.

``claim(run_dir)`` refuses a folder that already holds something (unless ``overwrite``, which
empties it first, or ``resume``), a path that is a file, and a folder another live TL Studio
process is training in (its ``.lock`` names the process and host; a lock whose process is gone is
stale and taken over). ``run_status(run_dir)`` reads ``run.json`` and says ``interrupted`` for a
run that says "running" but whose process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

# Every file name of a run folder (and of its exports), here and nowhere else.
RUN_JSON = "run.json"  # status, data folder, device, timings: the run's truth
SETTINGS = "settings.json"  # the TrainSettings the run used
MANIFEST = "manifest.csv"  # the split: which file is in train, validation or test
HISTORY = "history.json"  # per-epoch metrics and phases
METRICS = "metrics.json"
EVALUATION = "evaluation.json"  # test-split scores, confusion matrix, misclassified images
REPORT = "report.html"
MODEL = "model.keras"  # the trained classifier (Keras format)
METADATA = "metadata.json"  # labels, image size, preprocessing: what a loader needs
LABELS = "labels.txt"
THRESHOLDS = "thresholds.json"  # multi-label: {label: decision threshold}, tuned on validation
CALIBRATION = "calibration.json"  # multi-label --calibrate: {label: {scale, shift}} (Platt, baked in)
SAVED_MODEL = "saved_model"  # the SavedModel serving raw images
CHECKPOINTS = "checkpoints"
BEST_WEIGHTS = "best.weights.h5"  # in CHECKPOINTS: the best epoch so far
LAST_WEIGHTS = "last.weights.h5"  # in CHECKPOINTS: the last finished epoch, to resume from
EXPORT = "export"  # RUN/export/<format>[-<mode>]/
EXPORT_DESCRIPTION = "model.json"  # in each RUN/export/<artefact>/: its input, output and checks
TENSORBOARD = "tensorboard"  # event files for `tensorboard --logdir`
CROSS_VALIDATION = "cross_validation.json"
TEACHER_PROBABILITIES = "teacher_probabilities.npz"  # a distilled run: its teacher's outputs, once
LOCK = ".lock"


class RunFolderError(Exception):
    """The run folder cannot be used, with a message that says what to do."""


@dataclass
class RunLock:
    """This process's claim on a run folder; ``release()`` gives it up."""

    path: Path

    def release(self) -> None:
        """Remove the lock if it is still this process's."""
        holder = _read_lock(self.path)
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            with contextlib.suppress(OSError):
                self.path.unlink()


def claim(run_dir: str | os.PathLike[str], *, overwrite: bool = False, resume: bool = False) -> RunLock:
    """Make ``run_dir`` this process's run folder.

    Args:
        run_dir: the folder (created when missing).
        overwrite: an existing folder's contents are removed first.
        resume: an existing run is continued: its contents are kept.

    Returns:
        The lock, to release when the run ends.

    Raises:
        RunFolderError: a file in the way, a folder that holds another run, a folder locked by a
            live process, or one that cannot be written.
    """
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise RunFolderError(f"{run} is a file, not a folder: choose another --out")
    try:
        run.mkdir(parents=True, exist_ok=True)
        lock = _take_lock(run / LOCK)
    except PermissionError as err:
        raise RunFolderError(f"cannot write to {run}: permission denied ({err.strerror})") from err
    except OSError as err:
        raise RunFolderError(f"cannot write to {run}: {err.strerror or err}") from err
    others = [p for p in run.iterdir() if p.name != LOCK]
    if others and not resume:
        if not overwrite:
            lock.release()
            status = run_status(run).get("status", "unknown")
            raise RunFolderError(
                f"{run} already holds a run (status: {status}) or other files: a run never mixes its files "
                "with an earlier one's. Use --overwrite to replace it, --resume to continue it, or "
                "another --out"
            )
        for p in others:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return lock


def run_status(run_dir: str | os.PathLike[str]) -> dict:
    """``run.json`` as it is, except that a "running" run whose process is gone is "interrupted";
    a claimed folder without ``run.json`` yet is "running" while its process lives, else
    "interrupted" ({} for a folder that is no run)."""
    run = Path(run_dir)
    try:
        data = json.loads((run / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        if (run / LOCK).is_file():  # claimed, still building its model (or killed while it did)
            return {"status": "running" if _held_by_live_process(run / LOCK) else "interrupted"}
        return {}
    if not isinstance(data, dict):  # not a run's record (hand-edited, or another program's file)
        return {}
    if data.get("status") == "running" and not _held_by_live_process(run / LOCK):
        data["status"] = "interrupted"
        checkpoint = run / CHECKPOINTS / BEST_WEIGHTS
        if checkpoint.is_file():
            data["checkpoint"] = str(checkpoint)
    return data


def _take_lock(path: Path) -> RunLock:
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if holder and _alive(holder):
                raise RunFolderError(
                    f"{path.parent} is in use by another TL Studio run (process {holder.get('pid')} on "
                    f"{holder.get('host')}): wait for it to end, or choose another --out"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a stale lock: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(record)
        return RunLock(path)
    raise RunFolderError(f"could not lock {path.parent}: another process keeps taking it")


def _read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _held_by_live_process(path: Path) -> bool:
    holder = _read_lock(path)
    return _alive(holder) if holder else False


def _alive(holder: dict) -> bool:
    """Whether the lock's process still runs. On another host we cannot tell: assume it does."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder.get("pid")
    return isinstance(pid, int) and pid > 0 and process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether a process of this machine runs (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
