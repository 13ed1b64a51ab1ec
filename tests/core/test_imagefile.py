"""Format sniffing, integrity checks and RGB conversion of single files."""

from __future__ import annotations

import numpy as np
import pytest
from factory import (
    animated_gif,
    encode,
    jpeg_with_orientation,
    pattern,
    png_bomb,
    write,
    write_image,
)
from PIL import Image

from tlstudio.core.data.imagefile import ImageProblem, load_rgb, probe_image


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jpg", "JPEG"),
        ("a.png", "PNG"),
        ("a.gif", "GIF"),
        ("a.bmp", "BMP"),
        ("a.webp", "WEBP"),
        ("a.tiff", "TIFF"),
    ],
)
@pytest.mark.parametrize("deep", [False, True])
def test_valid_formats_are_accepted(tmp_path, name, fmt, deep):
    path = write_image(tmp_path / name)
    info = probe_image(path, deep=deep)
    assert (info.format, info.width, info.height) == (fmt, 40, 30)
    assert load_rgb(path).size == (40, 30)


def test_format_comes_from_content_not_extension(tmp_path):
    path = write(tmp_path / "really_a_png.jpg", encode(pattern(), "PNG"))
    assert probe_image(path).format == "PNG"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML page"),
        (b"hello, I am plain text\n" * 10, "text file"),
        (b"%PDF-1.4 binary stuff \x00\x01", "PDF"),
        (bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8)), "not an image"),
    ],
)
def test_non_images_are_refused_with_a_reason(tmp_path, content, expected):
    path = write(tmp_path / "photo.jpg", content)
    with pytest.raises(ImageProblem, match=expected):
        probe_image(path)


def test_html_named_jpg_says_so(tmp_path):
    path = write(tmp_path / "cat.jpg", b"<html><head><title>x</title></head></html>")
    with pytest.raises(ImageProblem) as err:
        probe_image(path)
    assert str(err.value) == "not an image (named .jpg): an HTML page"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_truncated_images_are_refused(tmp_path, fmt):
    data = encode(pattern(64, 64), fmt)
    path = write(tmp_path / f"cut.{fmt.lower()}", data[: int(len(data) * 0.6)])
    with pytest.raises(ImageProblem, match=r"truncated|corrupt"):
        probe_image(path)


def test_png_with_damaged_pixels_fails_its_crc(tmp_path):
    data = bytearray(encode(pattern(64, 64), "PNG"))
    data[len(data) // 2] ^= 0xFF
    path = write(tmp_path / "damaged.png", bytes(data))
    with pytest.raises(ImageProblem, match="corrupt"):
        probe_image(path)


def test_jpeg_with_trailing_padding_is_fine(tmp_path):
    path = write(tmp_path / "padded.jpg", encode(pattern(), "JPEG") + b"\x00" * 100)
    assert probe_image(path).format == "JPEG"


def test_decompression_bomb_is_not_decoded(tmp_path, monkeypatch):
    path = write(tmp_path / "bomb.png", png_bomb(30000, 30000))
    assert path.stat().st_size < 1000

    def no_decode(*args, **kwargs):
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    with pytest.raises(ImageProblem, match=r"30000×30000|decompression bomb"):
        probe_image(path)


def test_image_over_our_own_limit_is_refused(tmp_path):
    path = write(tmp_path / "big.png", png_bomb(2000, 2000))
    with pytest.raises(ImageProblem, match=r"2000×2000 pixels \(4 megapixels\)"):
        probe_image(path, max_pixels=1_000_000)


def test_animated_gif_uses_first_frame(tmp_path):
    path = write(tmp_path / "anim.gif", animated_gif(3))
    assert probe_image(path).frames == 3
    first = np.asarray(Image.fromarray(pattern(24, 24, seed=0)).convert("P").convert("RGB"))
    assert np.array_equal(np.asarray(load_rgb(path)), first)


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (40, 20)), (3, (40, 20)), (6, (20, 40)), (8, (20, 40))]
)
def test_exif_orientation_is_applied(tmp_path, orientation, size):
    path = write(tmp_path / "rot.jpg", jpeg_with_orientation(40, 20, orientation))
    assert probe_image(path).exif_orientation == orientation
    assert load_rgb(path).size == size


def test_grayscale_and_palette_become_rgb(tmp_path):
    gray = np.full((8, 8), 77, np.uint8)
    p1 = write(tmp_path / "g.png", encode(Image.fromarray(gray, "L"), "PNG"))
    assert load_rgb(p1).getpixel((0, 0)) == (77, 77, 77)
    pal = Image.fromarray(pattern(8, 8)).convert("P")
    p2 = write(tmp_path / "p.png", encode(pal, "PNG"))
    assert load_rgb(p2).getpixel((3, 3)) == pal.convert("RGB").getpixel((3, 3))
    bilevel = Image.new("1", (8, 8), 1)
    p3 = write(tmp_path / "b.bmp", encode(bilevel, "BMP"))
    assert load_rgb(p3).getpixel((0, 0)) == (255, 255, 255)


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red where opaque
    rgba[0, 0, 3] = 255  # one opaque pixel, the rest fully transparent
    path = write(tmp_path / "a.png", encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    out = load_rgb(path)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (200, 0, 0)
    assert out.getpixel((1, 1)) == (255, 255, 255)
    la = Image.fromarray(np.stack([np.full((4, 4), 10, np.uint8), np.zeros((4, 4), np.uint8)], -1), "LA")
    assert load_rgb(write(tmp_path / "la.png", encode(la, "PNG"))).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    path = write(tmp_path / "cmyk.jpg", encode(cmyk, "JPEG", quality=95))
    assert probe_image(path).mode == "CMYK"
    r, g, b = load_rgb(path).getpixel((8, 8))
    assert r > 230 and g < 30 and b < 30


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 32768], [65535, 257]], dtype=np.uint16)
    img = Image.fromarray(arr)  # mode I;16
    path = write(tmp_path / "deep.png", encode(img, "PNG"))
    out = np.asarray(load_rgb(path))
    assert out[..., 0].tolist() == [[0, 128], [255, 1]]
    assert np.all(out[..., 0] == out[..., 2])


def test_draft_size_decodes_jpeg_smaller_but_not_below_request(tmp_path):
    path = write_image(tmp_path / "big.jpg", size=(800, 600))
    small = load_rgb(path, draft_size=(100, 75))
    assert 100 <= small.size[0] < 800 and 75 <= small.size[1] < 600
