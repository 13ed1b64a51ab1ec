"""One shape for long work: a progress callback, a stop token, and one ``Cancelled`` exception.

Every long core call takes ``stop`` (a ``threading.Event``: set it to cancel) and reports through a
plain callable; when it stops on request it raises ``Cancelled`` (or a subclass named for the work,
such as ``ScanCancelled``), so a caller — the CLI, the GUI's task runner, a notebook — tells "the user
cancelled" from "it failed" with one ``except Cancelled``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

StopToken = threading.Event
"""Set it to ask the work to stop; the work checks it between its steps."""

StepProgress = Callable[[str], None]
"""Told each step of the work in words."""

CountProgress = Callable[[int, int], None]
"""Told ``(done, total)`` after each unit of the work."""


class Cancelled(Exception):
    """The work stopped because its stop token was set; what was finished before is kept."""


def check(stop: StopToken | None, what: str = "stopped on request") -> None:
    """Raise ``Cancelled`` when ``stop`` is set.

    Args:
        stop: the work's stop token (None: it cannot be stopped).
        what: the message of the exception.

    Example:
        >>> token = threading.Event()
        >>> check(token)
        >>> token.set()
        >>> try:
        ...     check(token, "scan cancelled")
        ... except Cancelled as err:
        ...     print(err)
        scan cancelled
    """
    if stop is not None and stop.is_set():
        raise Cancelled(what)
