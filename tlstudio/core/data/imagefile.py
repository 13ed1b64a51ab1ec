"""One image file: sniff its real format cheaply, check it is whole, and load it as RGB.

Pillow reads only the header on ``Image.open``; the integrity checks look at the file's tail
(JPEG end marker, PNG chunk CRCs, GIF trailer, WebP RIFF length) and decode the pixels only when
that is the sole way to tell (BMP, TIFF, or a tail that looks wrong).
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Formats TL Studio accepts, as Pillow names them (MPO is the multi-picture JPEG some cameras write).
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP", "TIFF"})
# Pillow's own default; a larger image is refused without being decoded.
DEFAULT_MAX_PIXELS = 89_478_485
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".mpo"}
)
_TAIL_PADDING = b"\x00\r\n\t "


class ImageProblem(Exception):
    """A file that cannot be used as an image; ``str(err)`` is a reason a person understands."""


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an image file."""

    format: str
    width: int
    height: int
    mode: str
    frames: int = 1
    exif_orientation: int = 1


def probe_image(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS, deep: bool = False
) -> ImageInfo:
    """Identify an image by its content and check that it is whole.

    Args:
        path: the file.
        max_pixels: images declaring more pixels are refused undecoded (decompression bombs).
        deep: decode every image fully instead of the cheap structural checks.

    Returns:
        The header information.

    Raises:
        ImageProblem: with a reason, if the file is empty, not an image, of an unsupported
            format, too large, truncated or corrupt.
    """
    path = Path(path)
    size = regular_file_size(path)
    if size == 0:
        raise ImageProblem("empty file (0 bytes)")
    with _as_image_problem(path, max_pixels), Image.open(path) as img:
        info = _header_info(img, max_pixels)
        if deep or not _tail_looks_whole(path, img, info.format, size):
            _decode(img)
    return info


def load_rgb(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode an image as 8-bit RGB, upright, first frame only.

    EXIF orientation is applied; grayscale, palette, alpha (composited on white), CMYK and
    16-bit images are converted correctly. ``draft_size`` lets JPEG decode at a reduced scale
    that is still at least that size (faster for thumbnails and small model inputs).
    """
    regular_file_size(Path(path))  # a pipe would block the read forever
    with _as_image_problem(Path(path), max_pixels), Image.open(path) as img:
        _header_info(img, max_pixels)
        if draft_size is not None and img.format in ("JPEG", "MPO"):
            img.draft("RGB", draft_size)
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))


def regular_file_size(path: Path) -> int:
    """The size of a regular file (a link to one is fine).

    Raises:
        ImageProblem: "file not found", "not a regular file" (a pipe, device, socket or folder:
            refused before any read, which could block forever) or why it cannot be read.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageProblem("file not found") from None
    except OSError as err:
        raise ImageProblem(f"cannot read the file: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe, device or socket"
        raise ImageProblem(f"not a regular file ({kind})")
    return info.st_size


@contextlib.contextmanager
def _as_image_problem(path: Path, max_pixels: int) -> Iterator[None]:
    """Turn what Pillow raises for a bad file into an ``ImageProblem`` with a reason."""
    try:
        yield
    except ImageProblem:
        raise
    except Image.DecompressionBombError:
        raise ImageProblem(_bomb_reason(None, max_pixels)) from None
    except UnidentifiedImageError:
        raise ImageProblem(_not_an_image_reason(path)) from None
    except PermissionError:
        raise ImageProblem("cannot read the file: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, MemoryError) as err:
        raise ImageProblem(_corrupt_reason(err)) from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB with correct scaling and alpha on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _wide_to_rgb(img)
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError:
        raise ImageProblem(f"unsupported colour mode {mode}") from None


def _wide_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float images to 8 bits: 16-bit range scaled, floats in 0–1 or 0–255."""
    import numpy as np

    arr = np.asarray(img).astype(np.float64)
    top = float(arr.max()) if arr.size else 0.0
    if img.mode == "F":
        scale = 255.0 if top <= 1.0 else 1.0
    elif img.mode.startswith("I;16") or top > 255:
        scale = 255.0 / 65535.0 if top <= 65535 else 255.0 / top
    else:
        scale = 1.0
    gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def _header_info(img: Image.Image, max_pixels: int) -> ImageInfo:
    fmt = img.format or "unknown"
    if fmt not in SUPPORTED_FORMATS:
        raise ImageProblem(f"unsupported image format {fmt} (supported: JPEG, PNG, GIF, BMP, WebP, TIFF)")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageProblem(f"invalid image size {width}×{height}")
    if width * height > max_pixels:
        raise ImageProblem(_bomb_reason((width, height), max_pixels))
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not worth refusing the image for
        orientation = 1
    return ImageInfo(
        format="JPEG" if fmt == "MPO" else fmt,
        width=width,
        height=height,
        mode=img.mode,
        frames=int(getattr(img, "n_frames", 1) or 1),
        exif_orientation=orientation if 1 <= orientation <= 8 else 1,
    )


def _tail_looks_whole(path: Path, img: Image.Image, fmt: str, size: int) -> bool:
    """Cheap structural check; False means 'decode it to be sure'."""
    if fmt == "PNG":
        with Image.open(path) as fresh:  # verify() must come straight after open
            fresh.verify()  # walks every chunk up to IEND checking CRCs, without inflating pixels
        return True
    if fmt == "JPEG":
        return _tail(path, 64).rstrip(_TAIL_PADDING).endswith(b"\xff\xd9")
    if fmt == "GIF":
        return _tail(path, 16).rstrip(_TAIL_PADDING).endswith(b";")
    if fmt == "WEBP":
        with open(path, "rb") as fh:
            head = fh.read(12)
        declared = struct.unpack("<I", head[4:8])[0] + 8
        return head[:4] == b"RIFF" and declared <= size
    return False  # BMP, TIFF: decode


def _tail(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - n))
        return fh.read()


def _decode(img: Image.Image) -> None:
    """Decode the pixels of the first frame, refusing partial data."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; truncation would go unnoticed")
    if img.format in ("JPEG", "MPO"):
        img.draft("RGB", (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
    img.load()


def _bomb_reason(size: tuple[int, int] | None, max_pixels: int) -> str:
    limit = f"{max_pixels / 1e6:.0f} megapixel limit"
    if size is None:
        return f"declares far more pixels than the {limit}; not decoded (possible decompression bomb)"
    w, h = size
    return (
        f"declares {w}×{h} pixels ({w * h / 1e6:.0f} megapixels), over the {limit}; "
        "not decoded (possible decompression bomb)"
    )


def _corrupt_reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    if "truncated" in text.lower() or isinstance(err, EOFError):
        return f"truncated image: {text}"
    return f"corrupt image: {text}"


def _not_an_image_reason(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        head = b""
    what = _sniff_non_image(head)
    ext = path.suffix.lower()
    named = f" (named {ext})" if ext in IMAGE_EXTENSIONS else ""
    return f"not an image{named}: {what}"


def _sniff_non_image(head: bytes) -> str:
    low = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if low.startswith((b"<!doctype html", b"<html")) or b"<html" in low[:256]:
        return "an HTML page"
    if low.startswith(b"<?xml") or low.startswith(b"<svg"):
        return "an SVG/XML document (vector images are not supported)" if b"<svg" in low else "an XML file"
    signatures = {
        b"%PDF": "a PDF document",
        b"PK\x03\x04": "a ZIP archive",
        b"\x1f\x8b": "a gzip archive",
        b"Rar!": "a RAR archive",
        b"\x00\x00\x00\x18ftyp": "a video or HEIF file",
        b"\x00\x00\x00\x1cftyp": "a video or HEIF file",
        b"\x00\x00\x00\x20ftyp": "a video or HEIF file",
        b"ID3": "an MP3 file",
        b"\x7fELF": "a program",
        b"MZ": "a Windows program",
    }
    for magic, name in signatures.items():
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "a video or HEIF/AVIF file (not supported)"
    if head and _looks_like_text(head):
        return "a text file"
    return "unrecognised content"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # only a character cut at the end of the sample is allowed
            return False
        text = head[: err.start].decode("utf-8")
    return bool(text) and all(ch.isprintable() or ch in "\r\n\t" for ch in text)
