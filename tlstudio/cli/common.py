"""Helpers every command shares: failure lines, quiet TensorFlow, progress, number formatting."""

from __future__ import annotations

import sys
from pathlib import Path


def fail(command: str, message: str, code: int = 1) -> int:
    print(f"tlstudio {command}: {message}", file=sys.stderr)
    return code


def data_problem(path, *, training: bool = True) -> str | None:
    """Why ``path`` cannot be a command's data (a folder, or a labels CSV that must read cleanly), or None;
    said before TensorFlow loads (``training``: with the checks a training set needs)."""
    from tlstudio.core.data.labels_csv import (
        LabelsCsvError,
        data_source_problem,
        is_labels_csv,
        read_labels_csv,
    )

    if (why := data_source_problem(path)) is not None:
        return why
    if is_labels_csv(path):
        try:
            read_labels_csv(path, training=training)
        except LabelsCsvError as err:
            return str(err)
    return None


def folder_only_problem(path, command: str) -> str | None:
    """Why ``path`` cannot be the data of a command that takes class folders only (``compare``, ``auto``,
    ``sweep``), or None: a labels CSV is named as such, with the commands that take one.

    Example:
        >>> folder_only_problem("labels.csv", "sweep").startswith("sweep takes a folder")
        True
    """
    from tlstudio.core.data.labels_csv import is_labels_csv

    if is_labels_csv(path):
        return (
            f"{command} takes a folder of class folders, not a labels CSV ({path}) yet: train, evaluate, "
            "rank and inspect take one"
        )
    if not Path(path).is_dir():
        return f"{path} is not a folder"
    return None


def quiet_tensorflow() -> None:
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()


def progress_printer(label: str):
    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total} files", end=end, file=sys.stderr, flush=True)

    return show


def number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "—" if value is None else str(value)


def parse_plan(text: str):
    from tlstudio.core.freeze_plan import FreezePlan

    return FreezePlan.parse(text)
