"""TL Studio's data files (sample data, icons, desktop files), found through ``importlib.resources``.

They are the package ``tlstudio.resources`` (the top-level ``resources/`` folder, see setup.py), so
they are found the same way from a source checkout, a wheel, pipx or a PyInstaller bundle.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def resource(*parts: str) -> Path:
    """The path of a file or folder of ``tlstudio.resources``.

    Args:
        parts: the path inside ``resources/``, one name per part.

    Returns:
        A file-system path (TL Studio installs unzipped; a zipped install is refused).

    Raises:
        FileNotFoundError: the package's data is missing (a broken or partial install).
    """
    root = files("tlstudio.resources")
    path = Path(str(root.joinpath(*parts)))
    if not path.exists():
        raise FileNotFoundError(
            f"TL Studio's data file {'/'.join(parts)} is missing from {root}: the installation is "
            "incomplete; reinstall TL Studio (pip install --force-reinstall tlstudio)"
        )
    return path


def sample_dataset() -> Path:
    """The bundled digits dataset (one sub-folder per class)."""
    return resource("sample_data", "digits")


def sample_copy(folder: Path) -> Path:
    """A copy of the sample dataset of one's own in ``folder`` (made once): the installed copy may be
    read-only or move with an upgrade, and relabelling must not change the package.

    Args:
        folder: where the copy goes (``folder/digits``).

    Returns:
        The copy's path.
    """
    import shutil

    target = Path(folder) / "digits"
    if not target.is_dir():
        partial = Path(folder) / "digits.part"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(sample_dataset(), partial)
        partial.replace(target)
    return target


def icon_file(size: int | None = None) -> Path:
    """The application icon: the SVG, or the PNG of ``size`` pixels (one of ``ICON_SIZES``)."""
    return resource("icons", "tlstudio.svg" if size is None else f"tlstudio-{size}.png")
