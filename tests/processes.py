"""Processes seen in /proc, for the tests that check nothing is left running."""

from __future__ import annotations

from pathlib import Path


def processes_with(text: str) -> list[int]:
    """The live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
