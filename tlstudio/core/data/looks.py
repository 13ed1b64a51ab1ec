"""What an image looks like, in a few numbers: a perceptual hash and simple quality measures.

The perceptual hash (pHash: the signs of the lowest 8×8 frequencies of a 32×32 grey thumbnail,
against their median) changes little when an image is resized, re-compressed, brightened,
slightly blurred or cropped by a few per cent, so two files whose hashes differ in at most
``NEAR_DUPLICATE_BITS`` of 64 bits are near-duplicates. The hash of the mirrored image is kept
too, so a horizontally flipped copy (what flip augmentation makes) is also found.

The quality measures read the same decode: the darkest and brightest 1 % of the grey levels and
a sharpness that does not depend on contrast (how much of the image's variation is fine detail).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from tlstudio.core.data.imagefile import DEFAULT_MAX_PIXELS, load_rgb

HASH_SIDE = 32
HASH_LOW = 8
NEAR_DUPLICATE_BITS = 10
"""Two images are near-duplicates when their hashes differ in at most this many of 64 bits (either
one mirrored) *and* their 16×16 grey thumbnails correlate at least ``NEAR_DUPLICATE_CORRELATION``.
Measured in ``benchmarks/bench_near_duplicates.py``: re-encoded, resized, contrast-changed, lightly
blurred and mirrored copies are within 6 bits and correlate 0.97+; different photos are 12+ bits
apart; different drawings of one simple shape can be as close as 4 bits, which the correlation
(up to 0.99 for such drawings, so a few are still grouped) mostly separates."""
NEAR_DUPLICATE_CORRELATION = 0.95
THUMB_SIDE = 16
FLAT_THUMB = 1.0
"""A thumbnail whose grey levels vary less than this (of 255) is one colour: two such images are
near-duplicates when their mean levels differ by at most ``FLAT_LEVELS``."""
FLAT_LEVELS = 4.0
QUALITY_SIDE = 128
DARK_LEVEL = 0.12
"""An image is *too dark* when 99 % of its grey levels lie below this (of 1.0)."""
BRIGHT_LEVEL = 0.92
"""An image is *too bright* (washed out) when 99 % of its grey levels lie above this."""
BLUR_SHARPNESS = 0.06
"""An image is *blurred* when its sharpness (see ``Look.sharpness``) is below this, or below
``BLUR_RELATIVE`` of the folder's median. Measured at 128 px (``benchmarks/bench_near_duplicates.py``):
sharp photos 0.10 and more (median 0.35), drawings and digits 0.35 and more; a photo blurred by a
Gaussian of 1.5 % of its side 0.05–0.08, of 2.5 % 0.04–0.05."""
BLUR_RELATIVE = 0.2
FLAT_SPREAD = 0.02
"""An image whose grey levels vary less than this (standard deviation) is blank: no sharpness."""


@dataclass(frozen=True)
class Look:
    """Perceptual hashes and quality measures of one image.

    ``sharpness`` is the mean absolute Laplacian of the grey image (at most 128 px a side) divided
    by its standard deviation of grey levels: fine detail per unit of contrast.
    """

    phash: int
    phash_mirror: int
    thumb: bytes  # 16×16 grey levels, row by row
    low: float  # 1st percentile of grey levels, 0..1
    high: float  # 99th percentile
    spread: float  # standard deviation of grey levels
    sharpness: float

    def quality_reasons(self, blur_below: float = BLUR_SHARPNESS) -> list[str]:
        """Why this image may be a poor training example (empty when it looks fine).

        Args:
            blur_below: sharpness under which it counts as blurred.

        Returns:
            Short reasons, e.g. ``["very dark"]``.
        """
        reasons = []
        if self.high < DARK_LEVEL:
            reasons.append("very dark")
        if self.low > BRIGHT_LEVEL:
            reasons.append("very bright (washed out)")
        if reasons:
            return reasons  # too dark or bright to judge detail
        if self.spread < FLAT_SPREAD:
            reasons.append("blank (almost one colour)")
        elif self.sharpness < blur_below:
            reasons.append("blurred")
        return reasons


def look_at(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Look:
    """Decode an image (JPEG at a reduced scale) and measure how it looks.

    Args:
        path: the image file.
        max_pixels: larger images are refused undecoded.

    Returns:
        Its hashes and quality measures.

    Raises:
        ImageProblem: the image cannot be decoded.
    """
    img = load_rgb(path, max_pixels=max_pixels, draft_size=(QUALITY_SIDE, QUALITY_SIDE)).convert("L")
    if max(img.size) > QUALITY_SIDE:
        img.thumbnail((QUALITY_SIDE, QUALITY_SIDE), Image.Resampling.BOX)
    grey = np.asarray(img, dtype=np.float32) / 255.0
    small = np.asarray(img.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX), dtype=np.float32)
    low, high = np.percentile(grey, [1, 99])
    spread = float(grey.std())
    return Look(
        phash=_phash(small),
        phash_mirror=_phash(small[:, ::-1]),
        thumb=np.asarray(
            img.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX), dtype=np.uint8
        ).tobytes(),
        low=round(float(low), 4),
        high=round(float(high), 4),
        spread=round(spread, 4),
        sharpness=round(_laplacian_energy(grey) / spread, 4) if spread >= FLAT_SPREAD else 0.0,
    )


def near_duplicate_pairs(looks: list[Look], *, max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[int, int]]:
    """Index pairs (i < j) of images that are near-duplicates (see ``NEAR_DUPLICATE_BITS``).

    Args:
        looks: each image's look.
        max_bits: the largest Hamming distance between hashes that may still be a near-duplicate.

    Returns:
        Every near-duplicate pair, in order.
    """
    pairs = [(int(a), int(b)) for i, j in _close_pairs(looks, max_bits) for a, b in zip(i, j, strict=True)]
    return sorted(pairs)


def look_alike_labels(looks: list[Look], *, max_bits: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Which group of near-duplicates each image is in (groups closed under "near-duplicate of").

    Works block by block on a sparse graph, so a folder where thousands of images look alike (frames
    of a still camera) costs time in proportion to the pairs but never a list of them all.

    Args:
        looks: each image's look.
        max_bits: as for ``near_duplicate_pairs``.

    Returns:
        For each image, the smallest index in its group (its own index when it has no look-alike).
    """
    n = len(looks)
    labels = np.arange(n)
    for i, j in _close_pairs(looks, max_bits, labels=labels):
        if len(i) == 0:
            continue
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        rows = np.concatenate([i, np.arange(n)])
        cols = np.concatenate([j, labels])
        graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
        _, component = connected_components(graph, directed=False)
        smallest = np.full(component.max() + 1, n)
        np.minimum.at(smallest, component, np.arange(n))
        labels[:] = smallest[component]  # in place: the pair search reads it
    return labels


def _close_pairs(looks: list[Look], max_bits: int, *, labels: np.ndarray | None = None, block: int = 256):
    """Yield (i, j) index arrays, i < j, of near-duplicates, a chunk at a time.

    With ``labels``, pairs already in one group are not checked again (the caller updates it).
    """
    n = len(looks)
    if n < 2:
        return
    h = np.array([x.phash for x in looks], dtype=np.uint64)
    m = np.array([x.phash_mirror for x in looks], dtype=np.uint64)
    s, mirrored, level, flat = _standardised(looks)
    chunk = 65536
    for start in range(0, n, block):
        rows = h[start : start + block, None]
        close = (np.bitwise_count(rows ^ h[None, :]) <= max_bits) | (
            np.bitwise_count(rows ^ m[None, :]) <= max_bits
        )
        # one-colour pictures have no pattern to hash or correlate: alike when their levels are
        same_flat = flat[start : start + block, None] & flat[None, :]
        same_flat &= np.abs(level[start : start + block, None] - level[None, :]) <= FLAT_LEVELS
        close |= same_flat
        i, j = np.nonzero(close)
        i = i + start
        keep = i < j
        i, j = i[keep], j[keep]
        for c in range(0, len(i), chunk):
            a, b = i[c : c + chunk], j[c : c + chunk]
            if labels is not None:
                apart = labels[a] != labels[b]
                a, b = a[apart], b[apart]
            corr = np.maximum((s[a] * s[b]).sum(1), (s[a] * mirrored[b]).sum(1)) / s.shape[1]
            both_flat = flat[a] & flat[b] & (np.abs(level[a] - level[b]) <= FLAT_LEVELS)
            ok = ((corr >= NEAR_DUPLICATE_CORRELATION) & ~flat[a] & ~flat[b]) | both_flat
            yield a[ok], b[ok]


def _standardised(looks: list[Look]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Thumbnails as rows of zero mean and unit deviation, the same mirrored, each thumbnail's mean
    grey level, and whether it is one colour (``FLAT_THUMB``)."""
    t = np.frombuffer(b"".join(x.thumb for x in looks), dtype=np.uint8)
    t = t.reshape(len(looks), THUMB_SIDE, THUMB_SIDE).astype(np.float32)
    level = t.mean(axis=(1, 2), keepdims=True)
    spread = t.std(axis=(1, 2), keepdims=True)
    t = (t - level) / np.where(spread > 1e-6, spread, 1.0)
    flat = spread.ravel() < FLAT_THUMB
    return t.reshape(len(looks), -1), t[:, :, ::-1].reshape(len(looks), -1), level.ravel(), flat


def _phash(small: np.ndarray) -> int:
    d = _dct_matrix(HASH_SIDE)
    coeffs = (d @ small @ d.T)[:HASH_LOW, :HASH_LOW].ravel()
    median = np.median(coeffs[1:])
    value = 0
    for bit in coeffs > median:
        value = (value << 1) | int(bit)
    return value


@lru_cache(maxsize=2)
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * x + 1) * k / (2 * n)).astype(np.float32)


def _laplacian_energy(grey: np.ndarray) -> float:
    if min(grey.shape) < 3:
        return 0.0
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4.0 * grey[1:-1, 1:-1]
    return float(np.abs(lap).mean())
