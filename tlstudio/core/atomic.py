"""Write a file so that a crash or a kill leaves either the old file or the new one, never half."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_text(path: str | os.PathLike[str], text: str, *, errors: str | None = None) -> Path:
    """UTF-8 text to a temporary file beside ``path``, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", errors=errors)
    os.replace(tmp, path)
    return path


def write_json(path: str | os.PathLike[str], data: object) -> Path:
    """``data`` as indented JSON (non-JSON values as their ``str``), atomically."""
    return write_text(path, json.dumps(data, indent=2, default=str, ensure_ascii=False))
