"""Helpers every command shares: failure lines, quiet TensorFlow, progress, number formatting."""

from __future__ import annotations

import sys


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
