"""Every export format side by side, put in place as a set: a kill or a Cancel half-way leaves the
run's previous ``export/`` folder as it was, never some formats of the new model beside some of the
old one and no summary.

The artefacts are exported into a staging folder beside ``export/`` (each verified in its runtime,
as ``export_format`` does), the summary written there, what the set does not make carried over from
the old folder (a single format exported with other options), then one rename swaps the folders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from tlstudio.core import atomic
from tlstudio.core.deploy.formats import (
    ALL,
    DeployCancelled,
    DeployError,
    DeployResult,
    _clean_leftovers,
    _put_in_place,
    artefact_name,
    export_format,
)
from tlstudio.core.results import run_folder as files

SUMMARY = "summary.json"  # in export/: every artefact's result, as the table shows it


def export_all(
    run_dir,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    **kwargs,
) -> list[DeployResult]:
    """Every format and quantisation of ``ALL``; a format that fails is reported, the others land
    together (with the summary) in one rename; a cancelled set changes nothing.

    Args:
        run_dir: the run folder.
        stop: set to cancel: nothing of this set is put in place, the rest is not tried.
        progress: called as ``progress(done, total, artefact)`` before each artefact.
        **kwargs: as for ``export_format`` (not ``out``).

    Returns:
        One result per artefact, in ``ALL``'s order (folders as they are once in place).
    """
    run = Path(run_dir)
    final = run / files.EXPORT
    _undo_half_swap(run, final)
    _clean_leftovers(run)
    staging = atomic.staging_folder(run, f".staging-{files.EXPORT}-{os.getpid()}-")
    try:
        results, cancelled = [], False
        for done, (fmt, quantize) in enumerate(ALL):
            name = artefact_name(fmt, quantize)
            if progress is not None:
                progress(done, len(ALL), name)
            try:
                results.append(
                    export_format(run, fmt, quantize=quantize, stop=stop, out=staging / name, **kwargs)
                )
            except DeployCancelled as err:
                cancelled = True
                results.append(
                    DeployResult(fmt, quantize, None, None, error=f"{err}; nothing was put in place")
                )
            except DeployError as err:
                results.append(DeployResult(fmt, quantize, None, None, error=str(err)))
        if cancelled:  # the previous export stays as it was
            return [dataclasses.replace(r, folder=None) for r in results]
        made = {artefact_name(fmt, quantize) for fmt, quantize in ALL}
        if final.is_dir():
            for entry in final.iterdir():  # kept: what this set does not make (never an older artefact of it)
                if entry.name not in made and entry.name != SUMMARY and not entry.name.startswith("."):
                    copy = shutil.copytree if entry.is_dir() else shutil.copy2
                    copy(entry, staging / entry.name)
        results = [
            dataclasses.replace(r, folder=final / r.folder.name) if r.folder is not None else r
            for r in results
        ]
        atomic.write_json(staging / SUMMARY, [r.to_dict() for r in results])
        _put_in_place(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


def _undo_half_swap(run: Path, final: Path) -> None:
    """A kill between the swap's two renames left no ``export/`` but the old one set aside: back."""
    if final.exists():
        return
    for old in sorted(run.glob(f".old-{files.EXPORT}-*")):
        with contextlib.suppress(OSError):
            os.replace(old, final)
            return
