"""A core ``Working`` event shown the same way by every long job of the app: the step in words on a
label, done of total on a bar (busy when the step does not count)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar

from tlstudio.core import events as ev


def show_working(event: ev.Working, words: QLabel, bar: QProgressBar) -> None:
    """Show ``event`` on ``words`` ("Computing features…") and ``bar``.

    Args:
        event: the core's event.
        words: the label that says the step.
        bar: the progress bar (a range of 0 to 0 when the step counts nothing: busy).
    """
    words.setText(f"{event.step[0].upper()}{event.step[1:]}…")
    if event.total:
        bar.setRange(0, event.total)
        bar.setValue(event.done)
    else:
        bar.setRange(0, 0)
