"""Sweep workers started on this machine (by the app): each worker's `tlstudio sweep` command line,
the settings file they share, and the one-line reason a worker that ended badly gave.

A worker is the ordinary command (``python -m tlstudio sweep …``), so what the app starts is what a
person would type, and a worker that refuses its arguments says why in one line on stderr.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tlstudio.core import atomic
from tlstudio.core.data.labels_csv import is_labels_csv
from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import SWEEP_STUDY, SWEEP_TRIALS, TrainSettings

SETTINGS_FILE = files.SETTINGS  # in the sweep's folder: the training settings its workers share
Devices = Literal["auto", "cpu", "one GPU each"]
DEVICES: tuple[Devices, ...] = ("auto", "cpu", "one GPU each")  # worker i: --device gpu:i
STOPPED = 130  # a worker's exit code after SIGTERM or Ctrl-C (its trial failed and queued again)


@dataclass(frozen=True)
class WorkerPlan:
    """What the app's *Start workers* asks for.

    Attributes:
        data_dir: the data folder (the same on every machine of the study).
        out: the sweep's folder on this machine (its runs, logs and ``trials.json``).
        trials: complete trials in the whole study.
        workers: worker processes to start here.
        study: the study's name (an existing one in ``storage`` is joined).
        storage: a database URL (PostgreSQL for several machines); None: SQLite in ``out``.
        backbones: the candidates; empty: the study's when joining it, else ``rank``'s ties.
        settings: the training settings of every trial (the project's); None: the sweep's defaults.
        space: a search-space JSON file, or None (the default space).
        devices: every worker on ``auto`` or the ``cpu``, or ``one GPU each`` (``--device gpu:i``).
        options: further `tlstudio sweep` options, as typed.
    """

    data_dir: Path
    out: Path
    trials: int = SWEEP_TRIALS
    workers: int = 1
    study: str = SWEEP_STUDY
    storage: str | None = None
    backbones: tuple[str, ...] = ()
    settings: TrainSettings | None = None
    space: Path | None = None
    devices: Devices = "auto"
    options: tuple[str, ...] = ()


def plan_problem(plan: WorkerPlan) -> str | None:
    """Why the plan cannot start workers, in one line (before anything is written), or None."""
    if is_labels_csv(plan.data_dir):
        return f"sweeps take a folder of class folders, not a labels CSV ({plan.data_dir}) yet"
    if not plan.data_dir.is_dir():
        return f"the data folder {plan.data_dir} is not a folder"
    if plan.out.exists() and not plan.out.is_dir():
        return f"{plan.out} is a file, not a folder"
    if plan.workers < 1:
        return "start at least 1 worker"
    if plan.trials < 1:
        return "the study needs at least 1 trial"
    if not plan.study.strip():
        return "the study needs a name"
    if plan.space is not None and not plan.space.is_file():
        return f"the search space {plan.space} is not a file"
    if plan.devices not in DEVICES:
        return f"devices: one of {', '.join(DEVICES)}, not {plan.devices!r}"
    if plan.storage:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(plan.storage)
        except ArgumentError:
            return f"{plan.storage!r} is not a database URL (postgresql://USER@HOST:PORT/DB)"
    return None


def worker_commands(plan: WorkerPlan, python: str = sys.executable) -> list[list[str]]:
    """One `tlstudio sweep` command line per worker (writes the shared settings file first).

    Args:
        plan: the workers to start.
        python: the interpreter that runs them.

    Returns:
        ``plan.workers`` argument lists, the program first.

    Example:
        >>> worker_commands(WorkerPlan(Path("data"), Path("sweeps/a"), trials=8, workers=2))[1][:4]
        ['/usr/bin/python3', '-m', 'tlstudio', 'sweep']
    """
    common = [python, "-m", "tlstudio", "sweep", str(plan.data_dir), "--out", str(plan.out)]
    common += ["--study", plan.study, "--trials", str(plan.trials)]
    if plan.storage:
        common += ["--storage", plan.storage]
    if plan.backbones:
        common += ["--backbone", plan.backbones[0]] if len(plan.backbones) == 1 else []
        common += ["--candidates", ",".join(plan.backbones)] if len(plan.backbones) > 1 else []
    if plan.space is not None:
        common += ["--space", str(plan.space)]
    if plan.settings is not None:
        plan.out.mkdir(parents=True, exist_ok=True)
        atomic.write_json(plan.out / SETTINGS_FILE, plan.settings.to_dict())
        common += ["--settings", str(plan.out / SETTINGS_FILE)]
    if "--threads" not in plan.options:  # the cores shared between this machine's workers
        common += ["--threads", str(max(1, (os.cpu_count() or 1) // plan.workers))]
    commands = []
    for i in range(plan.workers):
        device = {"auto": [], "cpu": ["--device", "cpu"]}.get(plan.devices, ["--device", f"gpu:{i}"])
        commands.append([*common, *device, *plan.options])
    return commands


def failure_reason(code: int, stderr: str, crashed: bool = False) -> str:
    """What a worker that ended badly said: its one-line refusal (``tlstudio sweep: …``), else its
    last line of output; ``stopped`` after SIGTERM, ``killed`` when a signal ended it."""
    if code == STOPPED:
        return "stopped (its trial failed and was queued again)"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("tlstudio sweep:")]
    if said:
        return said[-1].removeprefix("tlstudio sweep:").strip()
    if crashed:
        return "killed"
    last = re.sub(r"\s+", " ", lines[-1])[:200] if lines else "no output"
    return f"ended with code {code}: {last}"
