"""The SavedModel's encoded-image entry points turn images upright by their EXIF orientation, as
training (Pillow's ``exif_transpose``) does, with TensorFlow ops alone; the export check feeds them
rotated files."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import warnings

import numpy as np
import pytest
import tensorflow as tf
from factory import pattern, png_chunk
from PIL import Image, ImageOps

from tlstudio.core.deploy import exif
from tlstudio.core.deploy.exif import apply_orientation, decode_upright, exif_orientation

UNDO = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@tf.function
def orientations_in_graph(files):
    """As the SavedModel runs it: per image, inside a graph."""
    return tf.map_fn(exif_orientation, files, fn_output_signature=tf.int32)


def exif_block(orientation: int, endian: str = ">") -> bytes:
    data = Image.Exif()
    data.endian = endian
    data[0x0112] = orientation
    return data.tobytes()


def encoded(picture: np.ndarray | Image.Image, fmt: str, **options) -> bytes:
    img = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buf = io.BytesIO()
    if fmt == "WEBP":
        options.setdefault("lossless", True)
    img.save(buf, fmt, **options)
    return buf.getvalue()


@contextlib.contextmanager
def quiet_pillow():
    """Pillow warns "Corrupt EXIF data" and reads on (``catch_warnings(action=)`` is Python 3.11+)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def pillow_upright(data: bytes) -> np.ndarray:
    """What training decodes (tlstudio.core.data.imagefile.load_rgb does this)."""
    with quiet_pillow(), Image.open(io.BytesIO(data)) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def pillow_orientation(data: bytes) -> int:
    try:
        with quiet_pillow(), Image.open(io.BytesIO(data)) as img:
            value = img.getexif().get(0x0112, 1)
            value = value[0] if isinstance(value, tuple) and value else value
    except Exception:
        return 1
    return value if value in range(1, 9) else 1


def tiff(endian: str, entries: list[tuple[int, int, int, bytes]], ifd_offset: int = 8, count=None) -> bytes:
    """A TIFF block by hand: (tag, type, count, 4 value bytes) per IFD0 entry."""
    e = "<" if endian == "II" else ">"
    head = endian.encode() + struct.pack(f"{e}HI", 42, ifd_offset)
    body = struct.pack(f"{e}H", len(entries) if count is None else count)
    for tag, kind, n, value in entries:
        body += struct.pack(f"{e}HHI", tag, kind, n) + value
    return head + body + b"\0\0\0\0"


def jpeg_with_app1(payload: bytes, declared: int | None = None, before: bytes = b"") -> bytes:
    """A plain JPEG with an APP1 segment carrying ``payload`` inserted after SOI (and ``before``)."""
    plain = encoded(pattern(12, 8), "JPEG")
    length = len(payload) + 2 if declared is None else declared
    return plain[:2] + before + b"\xff\xe1" + struct.pack(">H", length) + payload + plain[2:]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("endian", [">", "<"])
def test_every_orientation_in_both_byte_orders_matches_pillow(fmt, endian):
    upright = pattern(24, 16, seed=3)  # not square: a rotation changes the shape
    files = []
    for orientation in range(1, 9):
        stored = Image.fromarray(upright)
        if orientation in UNDO:
            stored = stored.transpose(UNDO[orientation])
        data = encoded(stored, fmt, exif=exif_block(orientation, endian))
        if fmt == "JPEG":
            assert data[:2] == b"\xff\xd8" and (b"II*\0" if endian == "<" else b"MM\0*") in data[:64]
        files.append(data)
        assert int(exif_orientation(tf.constant(data))) == orientation == pillow_orientation(data)
        got = decode_upright(tf.constant(data)).numpy()
        want = pillow_upright(data)
        assert got.shape == want.shape == (16, 24, 3)
        assert np.array_equal(got, want), (fmt, orientation)  # JPEG too: the accurate DCT is Pillow's
        if fmt != "JPEG":
            assert np.array_equal(got, upright)
    assert orientations_in_graph(tf.constant(files)).numpy().tolist() == list(range(1, 9))


def test_apply_orientation_is_exif_transpose_for_each_value():
    stored = pattern(7, 5, seed=1)
    for orientation in range(1, 9):
        img = Image.fromarray(stored)
        method = {  # ImageOps.exif_transpose's table
            2: Image.Transpose.FLIP_LEFT_RIGHT,
            3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270,
            7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90,
        }.get(orientation)
        want = np.asarray(img.transpose(method)) if method is not None else stored
        got = apply_orientation(tf.constant(stored), tf.constant(orientation)).numpy()
        assert np.array_equal(got, want), orientation


def test_files_without_exif_are_orientation_1():
    picture = pattern(10, 6)
    files = {
        "JPEG": encoded(picture, "JPEG"),
        "PNG": encoded(picture, "PNG"),
        "GIF": encoded(picture, "GIF"),
        "BMP": encoded(picture, "BMP"),
        "WEBP": encoded(picture, "WEBP"),
    }
    for name, data in files.items():
        assert int(exif_orientation(tf.constant(data))) == 1, name
        assert decode_upright(tf.constant(data)).shape == (6, 10, 3), name
    assert orientations_in_graph(tf.constant(list(files.values()))).numpy().tolist() == [1] * len(files)


GOOD = tiff("MM", [(0x0112, 3, 1, b"\x00\x06\x00\x00")])
MALFORMED = {
    "empty": b"",
    "one byte": b"\xff",
    "SOI only": b"\xff\xd8",
    "PNG signature only": b"\x89PNG\r\n\x1a\n",
    "RIFF without chunks": b"RIFF\x04\x00\x00\x00WEBP",
    "not an image": b"hello, world" * 10,
    "APP1 cut after its marker": b"\xff\xd8\xff\xe1",
    "APP1 cut in its Exif header": b"\xff\xd8\xff\xe1\x00\x40Exif",
    "APP1 length 0": b"\xff\xd8\xff\xe1\x00\x00Exif\x00\x00" + GOOD,
    "APP1 length runs past the end": b"\xff\xd8\xff\xe1\xff\xffExif\x00\x00MM\x00*",
    "TIFF cut in its header": jpeg_with_app1(b"Exif\x00\x00MM\x00*\x00"),
    "TIFF cut in the entry": jpeg_with_app1(b"Exif\x00\x00" + GOOD[:16]),
    "entry outside the segment": jpeg_with_app1(b"Exif\x00\x00" + GOOD, declared=8 + 6 + 12),
    "unknown byte order": jpeg_with_app1(b"Exif\x00\x00" + b"XX" + GOOD[2:]),
    "IFD offset past the end": jpeg_with_app1(b"Exif\x00\x00" + tiff("MM", [], ifd_offset=0x7FFFFFF0)),
    "IFD offset 2**32-1": jpeg_with_app1(b"Exif\x00\x00" + tiff("II", [], ifd_offset=0xFFFFFFFF)),
    "orientation 0": jpeg_with_app1(b"Exif\x00\x00" + tiff("MM", [(0x0112, 3, 1, b"\x00\x00\x00\x00")])),
    "orientation 9": jpeg_with_app1(b"Exif\x00\x00" + tiff("MM", [(0x0112, 3, 1, b"\x00\x09\x00\x00")])),
    "orientation 65535": jpeg_with_app1(b"Exif\x00\x00" + tiff("II", [(0x0112, 3, 1, b"\xff\xff\x00\x00")])),
    "orientation as text": jpeg_with_app1(b"Exif\x00\x00" + tiff("MM", [(0x0112, 2, 1, b"6\x00\x00\x00")])),
    "three SHORT values (stored elsewhere)": jpeg_with_app1(
        b"Exif\x00\x00" + tiff("MM", [(0x0112, 3, 3, b"\x00\x00\x00\x20")])
    ),
    "a zero count": jpeg_with_app1(b"Exif\x00\x00" + tiff("MM", [(0x0112, 3, 0, b"\x00\x06\x00\x00")])),
    "PNG eXIf chunk cut short": b"\x89PNG\r\n\x1a\n" + png_chunk(b"eXIf", GOOD)[:20],
    "PNG chunk length 2**32-1": b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffeXIf" + GOOD,
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_missing_truncated_or_malformed_exif_is_orientation_1_never_an_error(name):
    data = MALFORMED[name]
    assert int(exif_orientation(tf.constant(data))) == 1
    assert pillow_orientation(data) == 1  # Pillow, too, turns none of these


def test_malformed_blocks_in_a_batch_in_a_graph_are_orientation_1():
    files = list(MALFORMED.values())
    assert orientations_in_graph(tf.constant(files)).numpy().tolist() == [1] * len(files)


def test_the_exif_segment_is_found_where_pillow_finds_it():
    block = b"Exif\x00\x00" + GOOD
    cases = {
        # behind a comment, an APP2 and fill bytes
        "after other segments": jpeg_with_app1(
            block, before=b"\xff\xfe\x00\x05hi!" + b"\xff\xe2\x00\x04ab" + b"\xff\xff"
        ),
        "double Exif prefix (Pillow strips both)": jpeg_with_app1(b"Exif\x00\x00" + block),
        "little-endian, LONG value": jpeg_with_app1(
            b"Exif\x00\x00" + tiff("II", [(0x0112, 4, 1, b"\x08\0\0\0")])
        ),
        "other tags first": jpeg_with_app1(
            b"Exif\x00\x00"
            + tiff("MM", [(0x010F, 2, 4, b"abc\0"), (0x0110, 2, 4, b"xyz\0"), (0x0112, 3, 1, b"\0\x03\0\0")])
        ),
        "the first of two entries (as Pillow)": jpeg_with_app1(
            b"Exif\x00\x00" + tiff("MM", [(0x0112, 3, 1, b"\0\x03\0\0"), (0x0112, 3, 1, b"\0\x05\0\0")])
        ),
        "an XMP APP1 first": jpeg_with_app1(
            block, before=b"\xff\xe1\x00\x22http://ns.adobe.com/xap/1.0/\x00<x/>"
        ),
        "PNG eXIf after IDAT": _png_with_late_exif(GOOD),
        # Pillow is lenient with these, and so is the parser
        "wrong TIFF magic number": jpeg_with_app1(b"Exif\x00\x00" + b"MM\x00\x2b" + GOOD[4:]),
        "an IFD cut short after the orientation": jpeg_with_app1(
            b"Exif\x00\x00" + tiff("MM", [(0x0112, 3, 1, b"\x00\x06\x00\x00")], count=65535)[:40]
        ),
        "two SHORT values (the first counts)": jpeg_with_app1(
            b"Exif\x00\x00" + tiff("MM", [(0x0112, 3, 2, b"\x00\x07\x00\x02")])
        ),
        "signed SHORT": jpeg_with_app1(b"Exif\x00\x00" + tiff("MM", [(0x0112, 8, 1, b"\x00\x05\x00\x00")])),
    }
    for name, data in cases.items():
        want = pillow_orientation(data)
        assert want != 1, name  # each case carries a real orientation
        assert int(exif_orientation(tf.constant(data))) == want, name
        assert np.array_equal(decode_upright(tf.constant(data)).numpy(), pillow_upright(data)), name


def _png_with_late_exif(block: bytes) -> bytes:
    plain = encoded(pattern(9, 5), "PNG")
    end = plain.rindex(b"IEND") - 4
    return plain[:end] + png_chunk(b"eXIf", block) + plain[end:]


def test_a_large_photo_is_parsed_in_milliseconds():
    import time

    big = encoded(pattern(1200, 900), "JPEG", exif=exif_block(6))
    files = tf.constant([big])
    orientations_in_graph(files)
    started = time.perf_counter()
    assert orientations_in_graph(files).numpy().tolist() == [6]
    assert time.perf_counter() - started < 0.5


def test_the_parser_uses_no_python_ops():
    graph = orientations_in_graph.get_concrete_function(tf.TensorSpec([None], tf.string)).graph
    ops = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        ops |= {node.op for node in function.node_def}
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert {"Substr", "DecodeRaw"} <= ops


# --- end to end: an exported run ------------------------------------------------------------------


def rotated_files(run, colour_data, folder):
    """The run's images stored rotated with EXIF orientations (and a PNG with an eXIf chunk), and
    the upright pixels Pillow gives for each."""
    from tlstudio.core.data.imagefile import load_rgb

    pictures = sorted(colour_data.rglob("*.png"))[:6]
    out = []
    for k, (orientation, fmt) in enumerate([(3, "JPEG"), (6, "JPEG"), (8, "JPEG"), (5, "JPEG"), (6, "PNG")]):
        upright = Image.open(pictures[k]).convert("RGB").crop((0, 0, 32, 24))
        path = folder / f"rotated-{orientation}.{fmt.lower()}"
        upright.transpose(UNDO[orientation]).save(
            path, fmt, exif=exif_block(orientation, "<" if k % 2 else ">")
        )
        out.append((path, np.asarray(load_rgb(path))))
    return out


@pytest.mark.slow
def test_serving_bytes_on_rotated_files_is_serve_on_the_upright_pixels(probe_run, colour_data, tmp_path):
    from tlstudio.core.deploy.formats import export_format

    result = export_format(probe_run, "saved_model")
    assert result.verification.encoded_files == 11 and result.verification.passed
    assert "encoded files" in result.verification.rule
    meta = json.loads((result.folder / "model.json").read_text())
    assert meta["verification"]["encoded_files"] == 11
    loaded = tf.saved_model.load(str(result.folder / "saved_model"))
    own = tf.saved_model.load(str(probe_run / "saved_model"))  # the run's own export: `serve`
    for path, upright in rotated_files(probe_run, colour_data, tmp_path):
        got = loaded.signatures["serving_bytes"](image_bytes=tf.constant([path.read_bytes()]))
        pixels = tf.constant(upright[None], tf.float32)
        want = loaded.signatures["serving_default"](images=pixels)["output_0"].numpy()
        served = own.serve(pixels).numpy()
        probabilities = got["probabilities"].numpy()
        assert np.abs(probabilities - want).max() <= 1e-4, path.name
        assert np.abs(probabilities - served).max() <= 1e-4, path.name
        assert int(got["class_index"].numpy()[0]) == int(want.argmax())


@pytest.mark.slow
def test_the_export_check_refuses_a_bytes_entry_point_that_ignores_the_orientation(probe_run, monkeypatch):
    from tlstudio.core.deploy.formats import DeployError, export_format

    before = (
        (probe_run / "export" / "saved_model" / "model.json").read_bytes()
        if (probe_run / "export" / "saved_model" / "model.json").exists()
        else None
    )
    monkeypatch.setattr(exif, "apply_orientation", lambda image, orientation: image)  # the old behaviour
    with pytest.raises(DeployError) as err:
        export_format(probe_run, "saved_model")
    message = str(err.value)
    assert "did not verify" in message and "EXIF orientation" in message and "serving_bytes" in message
    assert "nothing was put in place" in message
    after = probe_run / "export" / "saved_model" / "model.json"
    assert (after.read_bytes() if after.exists() else None) == before
