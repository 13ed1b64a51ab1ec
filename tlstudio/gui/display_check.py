"""Whether the window can open here, asked before Qt is: Qt aborts the process when its platform
plugin finds no display ("Reinstalling the application may fix this problem"), which no caller can
catch. Linux and the BSDs need an X server or a Wayland compositor that answers; other systems and
Qt's screenless platforms (offscreen, minimal, vnc, eglfs…) always have one.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
from pathlib import Path

ADVICE = (
    "On a server use the command line (`tlstudio --help`, e.g. `tlstudio train`), or set "
    "QT_QPA_PLATFORM=offscreen to run the app without a screen."
)
NO_DISPLAY = (
    "tlstudio: no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set). " + ADVICE
)
ON_SCREEN = ("xcb", "wayland", "wayland-egl")  # the platforms that need a display server
X_DISPLAY = re.compile(r"^(?P<host>[^:]*):(?P<number>\d+)(\.\d+)?$")


def display_problem(env=os.environ, platform: str = sys.platform) -> str | None:
    """Why the window cannot open here, or None.

    Args:
        env: the environment (DISPLAY, WAYLAND_DISPLAY, QT_QPA_PLATFORM, XDG_RUNTIME_DIR).
        platform: ``sys.platform``.

    Returns:
        A one-line message that says what to do, or None when a display answers (or none is needed).
    """
    if not platform.startswith(("linux", "freebsd", "openbsd")):
        return None
    asked = [p.split(":")[0].strip() for p in env.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    if any(p not in ON_SCREEN for p in asked):  # offscreen, minimal, vnc…: no display server needed
        return None
    display, wayland = env.get("DISPLAY", ""), env.get("WAYLAND_DISPLAY", "")
    wants_x = not asked or "xcb" in asked
    wants_wayland = not asked or any(p.startswith("wayland") for p in asked)
    if (wants_x and display and x_server_answers(display)) or (
        wants_wayland and wayland and wayland_answers(wayland, env.get("XDG_RUNTIME_DIR", ""))
    ):
        return None
    if not (display and wants_x) and not (wayland and wants_wayland):
        return NO_DISPLAY
    tried = []
    if display and wants_x:
        tried.append(f"DISPLAY={display}")
    if wayland and wants_wayland:
        tried.append(f"WAYLAND_DISPLAY={wayland}")
    return (
        f"tlstudio: no display answers at {' or '.join(tried)} (is its X server or desktop session "
        f"still running?). {ADVICE}"
    )


def x_server_answers(display: str, timeout: float = 1.0) -> bool:
    """Whether something listens where ``display`` (e.g. ``:0``, ``localhost:10.0``) points."""
    match = X_DISPLAY.match(display)
    if match is None:  # a form we do not parse (a launchd path…): let Qt try it
        return True
    host, number = match["host"], int(match["number"])
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        return _connects(socket.AF_UNIX, "\0" + path, timeout) or _connects(socket.AF_UNIX, path, timeout)
    return _connects(socket.AF_INET, (host, 6000 + number), timeout)


def wayland_answers(name: str, runtime_dir: str, timeout: float = 1.0) -> bool:
    """Whether a Wayland compositor listens on socket ``name`` (relative to ``XDG_RUNTIME_DIR``)."""
    path = Path(name) if Path(name).is_absolute() else Path(runtime_dir or "/nonexistent") / name
    return _connects(socket.AF_UNIX, str(path), timeout)


def _connects(family: int, address, timeout: float) -> bool:
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        return True
    return False
