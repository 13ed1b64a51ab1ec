"""`tlstudio --install-desktop-entry` / `--uninstall-desktop-entry`: the application menu entry."""

from __future__ import annotations

import sys

from tlstudio.cli.common import fail


def run_desktop_entry(install: bool) -> int:
    """Add TL Studio to (or remove it from) this user's XDG application menu."""
    from tlstudio import desktop_entry

    if not sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return fail(
            "desktop entry",
            "the menu entry is for Linux desktops (XDG); on Windows and macOS install the bundle "
            "(installer/README.md)",
            2,
        )
    home = desktop_entry.data_home()
    try:
        done = desktop_entry.install(home) if install else desktop_entry.uninstall(home)
    except OSError as err:
        return fail("desktop entry", f"could not write under {home}: {err}", 1)
    print(desktop_entry.describe(done, home, installed=install))
    return 0
