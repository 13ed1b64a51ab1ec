"""Synthetic image folders shared by the speed and memory benchmarks (one module both import, so
the benchmarks do not import each other)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def build_folder(root: Path, n: int, size: int) -> Path:
    """N JPEGs in 5 classes (colour-tinted noise), reused if already there."""
    done = root / f".complete-{n}-{size}"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    tints = rng.integers(40, 220, (5, 3))
    for i in range(n):
        label = i % 5
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        arr = np.clip(rng.normal(tints[label], 50, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i:06d}.jpg", quality=90)
    done.touch()
    return root
