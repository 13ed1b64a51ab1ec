"""EXIF orientation of an encoded image, read and applied with TensorFlow ops alone (no ``py_function``),
so a SavedModel that decodes image files turns them upright the way training does, in TF Serving too.

Training decodes with Pillow and ``ImageOps.exif_transpose``: the TIFF orientation tag (0x0112) of the
file's EXIF block says how the stored pixels must be flipped or rotated to display upright. Here the
same block is found in the bytes —

- JPEG (and MPO): the first APP1 segment that starts ``Exif\\0\\0``, found by walking the segments
  from SOI up to the start of scan;
- PNG: the ``eXIf`` chunk (any position before ``IEND``);
- WebP: the RIFF ``EXIF`` chunk;

— then its TIFF header (``II`` little-endian or ``MM`` big-endian; like Pillow, the magic number is
not checked), the first IFD, and its entry for tag 0x0112 (a SHORT, whose first value counts when
there are two, or one LONG, signed or not; the first such entry wins, and entries before a
truncation still count, as in Pillow). GIF, BMP and anything else have no orientation (1). A
block that is missing, truncated or malformed, or a value outside 1–8, gives 1: never an error.
Every read is bounds-checked and every loop bounded.

``apply_orientation`` then does what ``exif_transpose`` does for each value:
2 flip left-right, 3 rotate 180°, 4 flip top-bottom, 5 transpose, 6 rotate 90° clockwise,
7 transverse, 8 rotate 90° counter-clockwise.

Not read (Pillow reads them, rare in practice): an IFD0 that continues into a second APP1 segment,
an orientation of three or more SHORT values (stored away from its entry), and PNG's ImageMagick
text chunk ``Raw profile type exif``.
"""

from __future__ import annotations

import tensorflow as tf

ORIENTATION_TAG = 0x0112
MAX_IFD_ENTRIES = 256  # IFD0 entries looked at (tags are sorted; 0x0112 comes early)
MAX_SEGMENTS = 4096  # JPEG markers / PNG and WebP chunks walked before giving up
_EXIF_PREFIX = b"Exif\x00\x00"


def _read(data: tf.Tensor, size: tf.Tensor, pos: tf.Tensor, count: int) -> tf.Tensor:
    """``count`` bytes of ``data`` from ``pos`` as int64, zeros past the end (or for a bad ``pos``)."""
    inside = tf.logical_and(pos >= 0, pos <= size)
    start = tf.cast(tf.clip_by_value(pos, 0, size), tf.int32)
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, count), tf.uint8), tf.int64)
    raw = tf.reshape(tf.pad(raw, [[0, count - tf.shape(raw)[0]]]), [count])
    return raw * tf.cast(inside, tf.int64)


def _equals(values: tf.Tensor, expected: bytes) -> tf.Tensor:
    return tf.reduce_all(tf.equal(values, tf.constant(list(expected), tf.int64)))


def _be(values: tf.Tensor) -> tf.Tensor:
    """Big-endian unsigned integer of the last axis."""
    total = tf.zeros_like(values[..., 0])
    for i in range(values.shape[-1]):
        total = total * 256 + values[..., i]
    return total


def _le(values: tf.Tensor) -> tf.Tensor:
    return _be(values[..., ::-1])


def _walk(data, size, first: int, step):
    """Run ``step(pos) -> (next_pos, found, exif_start, exif_length, stop)`` from ``first``; returns
    the EXIF block's start and length, or (-1, 0)."""

    def cond(i, pos, start, length, done):
        return tf.logical_and(tf.logical_not(done), tf.logical_and(i < MAX_SEGMENTS, pos < size))

    def body(i, pos, start, length, done):
        next_pos, found, exif_start, exif_length, stop = step(pos)
        start = tf.where(found, exif_start, start)
        length = tf.where(found, exif_length, length)
        # a position that does not move forward is a malformed file: stop there
        stuck = next_pos <= pos
        return i + 1, next_pos, start, length, tf.reduce_any([found, stop, stuck])

    one = tf.constant(-1, tf.int64)
    _, _, start, length, _ = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tf.constant(first, tf.int64), one, tf.constant(0, tf.int64), tf.constant(False)),
    )
    return start, length


def _jpeg_exif(data, size):
    def step(pos):
        b = _read(data, size, pos, 10)
        marker = b[1]
        is_ff = tf.equal(b[0], 0xFF)
        padding = tf.logical_and(is_ff, tf.equal(marker, 0xFF))
        bare = tf.logical_and(  # markers without a length: stuffed zero, TEM, RSTn, SOI
            is_ff,
            tf.reduce_any(
                [tf.equal(marker, 0x00), tf.equal(marker, 0x01), (marker >= 0xD0) & (marker <= 0xD8)]
            ),
        )
        end = tf.logical_and(is_ff, tf.logical_or(tf.equal(marker, 0xDA), tf.equal(marker, 0xD9)))
        length = _be(b[2:4])
        segment = tf.reduce_all([is_ff, ~padding, ~bare, ~end])
        found = tf.reduce_all(
            [
                segment,
                tf.equal(marker, 0xE1),
                length >= 8,
                pos + 2 + length <= size,  # Pillow refuses a segment cut short
                _equals(b[4:10], _EXIF_PREFIX),
            ]
        )
        next_pos = tf.where(
            ~is_ff | padding,
            pos + 1,  # junk before a marker, or fill bytes: Pillow skips them too
            tf.where(bare, pos + 2, pos + 2 + length),
        )
        stop = end | (segment & (length < 2))
        return next_pos, found, pos + 10, length - 8, stop

    return _walk(data, size, 2, step)


def _png_exif(data, size):
    def step(pos):
        b = _read(data, size, pos, 8)
        length = _be(b[0:4])
        found = _equals(b[4:8], b"eXIf") & (pos + 12 + length <= size)
        stop = _equals(b[4:8], b"IEND")
        return pos + 12 + length, found, pos + 8, length, stop

    return _walk(data, size, 8, step)


def _webp_exif(data, size):
    def step(pos):
        b = _read(data, size, pos, 8)
        length = _le(b[4:8])
        found = _equals(b[0:4], b"EXIF") & (pos + 8 + length <= size)
        return pos + 8 + length + length % 2, found, pos + 8, length, tf.constant(False)

    return _walk(data, size, 12, step)


def _tiff_orientation(data, size, start, length):
    """The orientation tag of the TIFF block at ``start`` (``length`` bytes), else 1."""
    # Pillow strips one or two "Exif\0\0" prefixes; the JPEG walk already skipped one
    again = _equals(_read(data, size, start, 6), _EXIF_PREFIX)
    start = tf.where(again, start + 6, start)
    length = tf.minimum(tf.where(again, length - 6, length), size - start)
    head = _read(data, size, start, 8)
    little = _equals(head[0:2], b"II")
    big = _equals(head[0:2], b"MM")

    def number(values):
        return tf.where(little, _le(values), _be(values))

    ifd = number(head[4:8])
    table = _read(data, size, start + ifd, 2 + 12 * MAX_IFD_ENTRIES)
    count = number(table[0:2])
    entries = tf.reshape(table[2:], [MAX_IFD_ENTRIES, 12])
    index = tf.range(MAX_IFD_ENTRIES, dtype=tf.int64)
    tag, kind, items = number(entries[:, 0:2]), number(entries[:, 2:4]), number(entries[:, 4:8])
    short = tf.equal(kind, 3) | tf.equal(kind, 8)  # SHORT, SSHORT
    long = tf.equal(kind, 4) | tf.equal(kind, 9)  # LONG, SLONG
    value = tf.where(short, number(entries[:, 8:10]), number(entries[:, 8:12]))
    usable = tf.reduce_all(
        [
            index < count,
            ifd + 2 + 12 * (index + 1) <= length,
            tf.equal(tag, ORIENTATION_TAG),
            (short & (items >= 1) & (items <= 2)) | (long & tf.equal(items, 1)),
        ],
        axis=0,
    )
    first = tf.reduce_min(tf.where(usable, index, MAX_IFD_ENTRIES))
    found = tf.gather(value, tf.minimum(first, MAX_IFD_ENTRIES - 1))
    valid = tf.reduce_all(
        [
            start >= 0,
            length >= 8,
            tf.logical_or(little, big),
            ifd >= 0,
            ifd + 2 <= length,
            first < MAX_IFD_ENTRIES,
            found >= 1,
            found <= 8,
        ]
    )
    return tf.cast(tf.where(valid, found, 1), tf.int32)


def exif_orientation(data: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (int32 1–8) of one encoded image (a scalar string); 1 when it has none.

    Example:
        >>> exif_orientation(tf.constant(open("phone.jpg", "rb").read())).numpy()
        6
    """
    data = tf.convert_to_tensor(data, tf.string)
    size = tf.cast(tf.strings.length(data), tf.int64)
    magic = _read(data, size, tf.constant(0, tf.int64), 16)
    is_jpeg = _equals(magic[0:2], b"\xff\xd8")
    is_png = _equals(magic[0:8], b"\x89PNG\r\n\x1a\n")
    is_webp = tf.logical_and(_equals(magic[0:4], b"RIFF"), _equals(magic[8:12], b"WEBP"))
    none = (tf.constant(-1, tf.int64), tf.constant(0, tf.int64))
    start, length = tf.case(
        [
            (is_jpeg, lambda: _jpeg_exif(data, size)),
            (is_png, lambda: _png_exif(data, size)),
            (is_webp, lambda: _webp_exif(data, size)),
        ],
        default=lambda: none,
    )
    return _tiff_orientation(data, size, start, length)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turn ``image`` [height, width, channels] upright as ``ImageOps.exif_transpose`` does."""

    def transpose(x):
        return tf.transpose(x, [1, 0, 2])

    branches = [
        lambda: image,  # 1: as stored
        lambda: image[:, ::-1],  # 2: FLIP_LEFT_RIGHT
        lambda: image[::-1, ::-1],  # 3: ROTATE_180
        lambda: image[::-1],  # 4: FLIP_TOP_BOTTOM
        lambda: transpose(image),  # 5: TRANSPOSE
        lambda: transpose(image)[:, ::-1],  # 6: ROTATE_270 (90° clockwise)
        lambda: transpose(image[::-1, ::-1]),  # 7: TRANSVERSE
        lambda: transpose(image)[::-1],  # 8: ROTATE_90 (90° counter-clockwise)
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    return tf.switch_case(index, branches)


def decode_upright(data: tf.Tensor) -> tf.Tensor:
    """Decode one encoded image (JPEG, PNG, GIF first frame, BMP, WebP) as uint8 RGB [h, w, 3], upright.

    JPEGs are decoded with the accurate integer DCT, which gives the same pixels as Pillow (the
    default ``tf.io.decode_image`` uses a faster, coarser one: up to ±12 levels apart here).
    """
    image = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    upright = apply_orientation(image, exif_orientation(data))
    upright.set_shape([None, None, 3])
    return upright
