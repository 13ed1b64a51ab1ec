"""`-v` / `-q`: how much of TL Studio's own logging (the ``tlstudio`` logger tree) reaches the terminal."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # (logging loads when a command runs, not for `--help`)
    import logging

LIBRARY = "tlstudio"
LEVELS = {-1: "ERROR", 0: "WARNING", 1: "INFO", 2: "DEBUG"}  # logging's level names
FORMAT = "tlstudio %(levelname)s %(name)s: %(message)s"


def add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    """``-v`` (more, twice for debug) and ``-q`` (errors only) on the top-level parser."""
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what TL Studio does (INFO; -vv: DEBUG); the default logs warnings and errors",
    )
    loudness.add_argument("-q", "--quiet", action="store_true", help="log errors only")


def level_of(verbose: int, quiet: bool) -> str:
    """The ``logging`` level's name for ``-v`` counted ``verbose`` times, or ``-q``.

    Example:
        >>> level_of(0, False), level_of(1, False), level_of(5, False), level_of(0, True)
        ('WARNING', 'INFO', 'DEBUG', 'ERROR')
    """
    return LEVELS[-1 if quiet else min(verbose, 2)]


def configure(level: str | int) -> logging.Logger:
    """Send the ``tlstudio`` logger's records at ``level`` and above to ``sys.stderr`` as it is when
    each is written (a stream replaced later, as a test's capture, still gets them), one line each;
    called again, it replaces its own handler (never another's).

    Args:
        level: a ``logging`` level or its name (``level_of``).

    Returns:
        The ``tlstudio`` logger.
    """
    import logging

    logger = logging.getLogger(LIBRARY)
    for handler in [h for h in logger.handlers if getattr(h, "_tlstudio_cli", False)]:
        logger.removeHandler(handler)

    class CurrentStderr(logging.StreamHandler):
        @property  # type: ignore[override]
        def stream(self) -> TextIO:
            return sys.stderr

        @stream.setter
        def stream(self, _value) -> None:  # (StreamHandler sets it at creation)
            pass

    handler = CurrentStderr()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._tlstudio_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    return logger
