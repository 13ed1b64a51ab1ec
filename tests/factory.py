"""Builders for real image files, good and hostile, that the tests write themselves."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def pattern(width: int = 40, height: int = 30, seed: int = 0) -> np.ndarray:
    """A deterministic, distinct RGB picture."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(1, 1, 3))
    yy, xx = np.mgrid[0:height, 0:width]
    img = (base + xx[..., None] * 3 + yy[..., None] * 5 + rng.integers(0, 40, (height, width, 3))) % 256
    return img.astype(np.uint8)


def encode(arr_or_img, fmt: str, **save_args) -> bytes:
    """Encode an array or PIL image in a Pillow format."""
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, fmt, **save_args)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    """Write bytes, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_image(path: Path, fmt: str | None = None, *, seed: int = 0, size=(40, 30), **save_args) -> Path:
    """Write a valid image (format from the extension unless given)."""
    fmt = (
        fmt
        or {
            ".jpg": "JPEG",
            ".jpeg": "JPEG",
            ".png": "PNG",
            ".gif": "GIF",
            ".bmp": "BMP",
            ".webp": "WEBP",
            ".tif": "TIFF",
            ".tiff": "TIFF",
        }[path.suffix.lower()]
    )
    return write(path, encode(pattern(*size, seed=seed), fmt, **save_args))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG file whose header declares a huge 1-bit image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + bytes((width + 7) // 8)
    idat = zlib.compress(row * 4, 9)  # far fewer rows than declared: never meant to be decoded
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def animated_gif(frames: int = 3) -> bytes:
    """An animated GIF whose frames differ."""
    imgs = [Image.fromarray(pattern(24, 24, seed=i)).convert("P") for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    return buf.getvalue()


def jpeg_with_orientation(width: int, height: int, orientation: int) -> bytes:
    """A JPEG stored as width×height with an EXIF orientation tag."""
    img = Image.fromarray(pattern(width, height, seed=5))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes())


def make_class_folder(
    root: Path, label: str, count: int, *, ext: str = ".png", seed: int = 0, size=(40, 30)
) -> list[Path]:
    """``count`` distinct valid images in ``root/label``."""
    return [
        write_image(root / label / f"img_{i:03d}{ext}", seed=seed * 1000 + i, size=size) for i in range(count)
    ]


COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def make_colour_dataset(root: Path, per_class: int = 12, size: int = 32, seed: int = 0) -> Path:
    """A learnable dataset: one class per dominant colour, with noise and a random square."""
    rng = np.random.default_rng(seed)
    for label, rgb in COLOURS.items():
        for i in range(per_class):
            img = np.clip(rng.normal(rgb, 35, (size, size, 3)), 0, 255)
            x, y = rng.integers(0, size // 2, 2)
            img[y : y + size // 3, x : x + size // 3] = rng.integers(0, 255, 3)
            write(root / label / f"{label}_{i:03d}.png", encode(img.astype(np.uint8), "PNG"))
    return root
