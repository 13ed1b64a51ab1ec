"""Every export format side by side, put in place as a set: a kill or a Cancel half-way leaves the
run's previous ``export/`` folder as it was, never some formats of the new model beside some of the
old one and no summary.

The artefacts are exported into a staging folder beside ``export/`` (each verified in its runtime,
as ``export_format`` does), the summary and the model card (``README.md``: ``model_card``) written
there, what the set does not make carried over from the old folder (a single format exported with
other options), then one rename swaps the folders.

The rule for a format that fails this time (a data folder that is not there, a converter missing, a
full disk, a runtime check that could not run, an artefact that did not verify): it never removes an
earlier verified artefact of its name made from the same ``model.keras``; that one is carried into
the new set and marked ``previous`` with the time it was verified, beside the reason this export
failed. A freshly verified artefact replaces the earlier one. Carried files are hard links where the
file system allows (no second copy on a full disk). When the set itself cannot be put in place (the
disk is full even for the summary), nothing changes and ``DeployError`` says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from tlstudio.core import atomic
from tlstudio.core.deploy.artefact_files import clean_leftovers, put_in_place
from tlstudio.core.deploy.format_list import NOT_BUILT, unavailable
from tlstudio.core.deploy.formats import (
    ALL,
    DESCRIPTION,
    DeployCancelled,
    DeployError,
    DeployResult,
    artefact_name,
    export_format,
)
from tlstudio.core.deploy.model_card import SET_CARD, model_card
from tlstudio.core.results import run_folder as files

SUMMARY = "summary.json"  # in export/: every artefact's result, as the table shows it


def export_all(
    run_dir,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    **kwargs,
) -> list[DeployResult]:
    """Every format and quantisation of ``ALL``; a format that fails is reported and keeps its earlier
    verified artefact (see the module's rule); the set lands (with the summary) in one rename; a
    cancelled set changes nothing.

    Args:
        run_dir: the run folder.
        stop: set to cancel: nothing of this set is put in place, the rest is not tried.
        progress: called as ``progress(done, total, artefact)`` before each artefact.
        **kwargs: as for ``export_format`` (not ``out``).

    Returns:
        One result per artefact, in ``ALL``'s order (folders as they are once in place): ``status``
        ``new``, ``previous`` (failed now; ``folder`` is the earlier artefact, kept), ``failed``, or
        ``skipped`` (a format not made on this machine: ``format_list.unavailable`` says why); then
        the formats named but not built (``format_list.NOT_BUILT``: Core ML), ``skipped``.

    Raises:
        DeployError: the set could not be put in place (a full disk); the previous export is as it was.
    """
    run = Path(run_dir)
    final = run / files.EXPORT
    _undo_half_swap(run, final)
    clean_leftovers(run)
    model = model_fingerprint(run)
    earlier = previous_artefacts(final, model)
    try:
        staging = atomic.staging_folder(run, f".staging-{files.EXPORT}-{os.getpid()}-")
    except OSError as err:
        raise DeployError(f"the export could not start in {run}: {_why(err)}; {_UNCHANGED}") from err
    try:
        results, cancelled = [], False
        for done, (fmt, quantize) in enumerate(ALL):
            name = artefact_name(fmt, quantize)
            if reason := unavailable(fmt):  # not made here: the reason, never an unverified artefact
                results.append(DeployResult(fmt, quantize, None, None, skipped=reason))
                continue
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
            except OSError as err:  # a full disk, a folder that cannot be written: not the model's fault
                shutil.rmtree(staging / name, ignore_errors=True)
                error = f"{name}: could not be written: {_why(err)}; nothing was put in place"
                results.append(DeployResult(fmt, quantize, None, None, error=error))
        if cancelled:  # the previous export stays as it was
            return [dataclasses.replace(r, folder=None) for r in results]
        results += [DeployResult(fmt, "float32", None, None, skipped=unavailable(fmt)) for fmt in NOT_BUILT]
        try:
            results = [_keep_earlier(r, earlier, final, staging) for r in results]
            made = {artefact_name(fmt, quantize) for fmt, quantize in ALL}
            if final.is_dir():
                for entry in final.iterdir():  # kept: what this set does not make (a single format's options)
                    if entry.name not in made | {SUMMARY, SET_CARD} and not entry.name.startswith("."):
                        _link_copy(entry, staging / entry.name)
            now = _now()  # one time for the set: what is new in it was verified by then
            results = [
                dataclasses.replace(
                    r,
                    folder=final / r.folder.name if r.folder is not None else None,
                    exported_at=now if r.error is None and not r.skipped else r.exported_at,
                )
                for r in results
            ]
            model = model or model_fingerprint(run)  # an interrupted run's model.keras is written by now
            atomic.write_json(staging / SUMMARY, [r.to_dict() | {"model_sha256": model} for r in results])
            atomic.write_text(staging / SET_CARD, model_card(run, [r.to_dict() for r in results]))  # its card
            put_in_place(staging, final)
        except OSError as err:
            raise DeployError(f"the export set could not be put in place: {_why(err)}; {_UNCHANGED}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


_UNCHANGED = f"the previous {files.EXPORT}/ is as it was"


def model_fingerprint(run: Path) -> str | None:
    """The SHA-256 of the run's ``model.keras`` (what every artefact is made from), or None."""
    try:
        digest = hashlib.sha256()
        with open(run / files.MODEL, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def previous_artefacts(final: Path, model: str | None) -> dict[str, dict[str, object]]:
    """The verified artefacts of ``ALL`` in ``export/`` now, by name: when each was verified and its
    verification (from its ``model.json``; the time from ``summary.json``, else the file's time).

    An artefact whose summary names another ``model.keras`` than ``model`` is not one (never an older
    model's artefact beside the new ones); a summary from before fingerprints were kept names none.
    """
    try:
        summary = json.loads((final / SUMMARY).read_text(encoding="utf-8"))
        entries = {e["name"]: e for e in summary if isinstance(e, dict) and "name" in e}
    except (OSError, ValueError, TypeError):
        entries = {}
    found = {}
    for fmt, quantize in ALL:
        name = artefact_name(fmt, quantize)
        description = final / name / DESCRIPTION
        try:  # only ever renamed into place once verified: its model.json says how it verified
            verification = json.loads(description.read_text(encoding="utf-8"))["verification"]
            verified_at = datetime.fromtimestamp(description.stat().st_mtime, timezone.utc)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        entry = entries.get(name, {})
        if model and entry.get("model_sha256") and entry["model_sha256"] != model:
            continue
        found[name] = {
            "folder": str(final / name),
            "exported_at": entry.get("exported_at") or verified_at.isoformat(timespec="seconds"),
            "verification": verification,
        }
    return found


def _keep_earlier(
    result: DeployResult, earlier: dict[str, dict[str, object]], final: Path, staging: Path
) -> DeployResult:
    """A failed format with an earlier verified artefact: that artefact goes into the new set."""
    previous = earlier.get(result.name)
    if result.error is None or previous is None:
        return result
    _link_copy(final / result.name, staging / result.name)
    when = previous["exported_at"]
    return dataclasses.replace(
        result,
        folder=staging / result.name,
        exported_at=str(when),
        previous=previous,
        error=f"{result.error} — the previous verified {result.name} (exported {when}) stays in place",
    )


def _link_copy(source: Path, target: Path) -> None:
    """``source`` at ``target`` as hard links (no second copy of the bytes), else copied."""

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise
            shutil.copy2(src, dst)

    if source.is_dir():
        shutil.copytree(source, target, copy_function=link, symlinks=True)
    else:
        link(source, target)


def _why(err: OSError) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full ({err.strerror})"
    return f"{type(err).__name__}: {err}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _undo_half_swap(run: Path, final: Path) -> None:
    """A kill between the swap's two renames left no ``export/`` but the old one set aside: back."""
    if final.exists():
        return
    for old in sorted(run.glob(f".old-{files.EXPORT}-*")):
        with contextlib.suppress(OSError):
            os.replace(old, final)
            return
