"""Put TL Studio in the desktop's application menu (XDG): a .desktop entry, icons, and the
``*.tlstudio.json`` file type, for the current user; and take them out again.

Written by hand (a few files, no library does this for a pip-installed app): the files follow the
freedesktop.org Desktop Entry, Icon Theme and Shared MIME-info specifications.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tlstudio.package_data import ICON_SIZES, icon_file, resource

APP_ID = "tlstudio"
MIME_TYPE = "application/x-tlstudio-project"
# the desktop's caches, refreshed when the tool is there (a missing one only delays the menu)
REFRESH = {
    "update-desktop-database": ("applications",),
    "update-mime-database": ("mime",),
    "gtk-update-icon-cache": ("-f", "-t", "icons/hicolor"),
}


@dataclass
class DesktopFiles:
    """What an install wrote (or an uninstall removed), and the desktop caches refreshed."""

    files: list[Path] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)


def data_home(env: dict[str, str] | os._Environ = os.environ) -> Path:
    """``$XDG_DATA_HOME``, by default ``~/.local/share``."""
    value = env.get("XDG_DATA_HOME", "")
    return Path(value) if value and Path(value).is_absolute() else Path.home() / ".local" / "share"


def launcher() -> list[str]:
    """The command that starts this TL Studio: the bundle, the ``tlstudio`` script, or ``python -m``."""
    if getattr(sys, "frozen", False):  # a PyInstaller bundle: the executable itself
        return [str(Path(sys.executable).resolve())]
    beside = Path(sys.executable).parent / "tlstudio"  # the script of this very environment
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("tlstudio")
    if found:
        return [str(Path(found).resolve())]
    return [str(Path(sys.executable).resolve()), "-m", "tlstudio"]


def exec_line(command: list[str]) -> str:
    """``command`` as a Desktop Entry ``Exec`` value, followed by ``%f`` (the file opened)."""

    def quoted(arg: str) -> str:
        if not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`="):
            return arg.replace("%", "%%")
        escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
        return '"' + escaped.replace("%", "%%") + '"'

    return " ".join(quoted(a) for a in command) + " %f"


def desktop_entry(command: list[str]) -> str:
    """The ``.desktop`` file's text for ``command`` (from ``resources/desktop/tlstudio.desktop``)."""
    lines = []
    for line in resource("desktop", "tlstudio.desktop").read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = "Exec=" + exec_line(command)
        lines.append(line)
    lines.append("TryExec=" + command[0])
    return "\n".join(lines) + "\n"


def planned_files(home: Path) -> dict[Path, Path | None]:
    """Every file an install writes under ``home``, with its source (None: the generated entry)."""
    icons = home / "icons" / "hicolor"
    planned: dict[Path, Path | None] = {home / "applications" / f"{APP_ID}.desktop": None}
    planned[home / "mime" / "packages" / f"{APP_ID}.xml"] = resource("desktop", "tlstudio-mime.xml")
    planned[icons / "scalable" / "apps" / f"{APP_ID}.svg"] = icon_file()
    for size in ICON_SIZES:
        planned[icons / f"{size}x{size}" / "apps" / f"{APP_ID}.png"] = icon_file(size)
    return planned


def install(home: Path | None = None, command: list[str] | None = None) -> DesktopFiles:
    """Write TL Studio's menu entry, icons and project file type for the current user.

    Args:
        home: the XDG data folder (default: ``data_home()``).
        command: how the entry starts TL Studio (default: ``launcher()``).

    Returns:
        The files written and the desktop caches refreshed.
    """
    home = home or data_home()
    command = command or launcher()
    done = DesktopFiles()
    for target, source in planned_files(home).items():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        if source is None:
            partial.write_text(desktop_entry(command), encoding="utf-8")
        else:
            shutil.copyfile(source, partial)
        partial.replace(target)
        done.files.append(target)
    done.refreshed = refresh_caches(home)
    return done


def uninstall(home: Path | None = None) -> DesktopFiles:
    """Remove what ``install`` wrote (the user's projects and runs are not touched)."""
    home = home or data_home()
    done = DesktopFiles()
    for target in planned_files(home):
        if target.exists():
            target.unlink()
            done.files.append(target)
    done.refreshed = refresh_caches(home)
    return done


def refresh_caches(home: Path) -> list[str]:
    """Run the desktop's cache tools that exist here; returns the ones that ran successfully."""
    ran = []
    for tool, args in REFRESH.items():
        path = shutil.which(tool)
        if not path:
            continue
        *flags, folder = args
        target = home / folder
        if not target.is_dir():
            continue
        result = subprocess.run([path, *flags, str(target)], capture_output=True, timeout=60)
        if result.returncode == 0:
            ran.append(tool)
    return ran


def describe(done: DesktopFiles, home: Path, installed: bool) -> str:
    """One line for the user: what was written or removed, where, and the caches refreshed."""
    caches = f"; refreshed {', '.join(done.refreshed)}" if done.refreshed else ""
    if installed:
        return f"TL Studio is in the application menu: {len(done.files)} files under {home}{caches}"
    if not done.files:
        return f"no TL Studio menu entry under {home}: nothing to remove"
    return f"removed TL Studio's menu entry: {len(done.files)} files under {home}{caches}"
