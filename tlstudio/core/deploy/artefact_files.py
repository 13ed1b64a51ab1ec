"""An artefact's folder on disk: put in place with one rename, leftovers of a killed export removed,
its size (an OpenVINO IR counts its .bin)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tlstudio.core.results.run_folder import process_alive


def put_in_place(staging: Path, target: Path) -> None:
    """One rename puts the artefact in place; an older one is kept aside until then, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_leftovers(folder: Path) -> None:
    """Remove staging and set-aside folders that a killed export left behind."""
    for leftover in list(folder.glob(".staging-*")) + list(folder.glob(".old-*")):
        parts = leftover.name.split("-")
        pid = parts[-2] if leftover.name.startswith(".staging-") else parts[-1]
        if pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid)):
            continue  # another export, still running
        shutil.rmtree(leftover, ignore_errors=True)


def artefact_size(path: Path) -> int:
    if path.suffix == ".xml":  # an OpenVINO IR: the .xml and its .bin
        return sum(p.stat().st_size for p in (path, path.with_suffix(".bin")) if p.is_file())
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
