"""Where the bundled sample data lives."""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def sample_dataset() -> Path:
    """The bundled digits dataset (one sub-folder per class)."""
    path = RESOURCES / "sample_data" / "digits"
    if not path.is_dir():
        raise FileNotFoundError(
            f"the sample dataset is not at {path}; run TL Studio from a source checkout "
            "(pip install -e .) or pass your own data folder"
        )
    return path
