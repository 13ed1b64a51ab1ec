"""The images the EfficientNet-Lite0 port is checked on, made with NumPy and Pillow only: the
one-off ``tools/lite0_timm_reference.py`` runs the same images through PyTorch and timm in a
virtual environment without TensorFlow.

Example:
    >>> names, images = reference_images()  # doctest: +SKIP
    >>> images.shape  # doctest: +SKIP
    (6, 224, 224, 3)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# scikit-image 0.26.0's sample photos (chelsea, coffee: CC0; astronaut: public domain), the shorter
# side resized to 224 px (bicubic) and the centre cropped to 224 × 224
PHOTOS = Path(__file__).parent / "data" / "lite0_photos"
PHOTO_NAMES = ("chelsea", "coffee", "astronaut")
RANDOM_COUNT = 3


def seeded_images(n: int = 2) -> np.ndarray:
    """Images a test can make anywhere: smooth colour fields with noise, uint8, 224 px."""
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:224, 0:224] / 223.0
    images = []
    for _ in range(n):
        a, b, c = rng.uniform(0, 255, (3, 3))
        field = np.stack([a[i] * xs + b[i] * ys + c[i] * xs * ys for i in range(3)], -1) / 2
        images.append(np.clip(field + rng.normal(0, 20, field.shape), 0, 255).astype(np.uint8))
    return np.stack(images)


def photos() -> np.ndarray:
    """The real photos, uint8 RGB, 224 px."""
    return np.stack([np.asarray(Image.open(PHOTOS / f"{n}.png").convert("RGB")) for n in PHOTO_NAMES])


def reference_images() -> tuple[list[str], np.ndarray]:
    """The names and pixels of every image with stored reference logits: the photos, then
    ``RANDOM_COUNT`` seeded images."""
    names = list(PHOTO_NAMES) + [f"seeded-{i}" for i in range(RANDOM_COUNT)]
    return names, np.concatenate([photos(), seeded_images(RANDOM_COUNT)])
