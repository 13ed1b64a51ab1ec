"""Builders for real image files, good and hostile, that the tests write themselves."""

from __future__ import annotations

import io
import struct
import types
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


SHAPES_A = ("circle", "square", "triangle", "cross")
SHAPES_B = ("ring", "diamond", "hbar", "vbar")


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One RGB image of a shape of random size, place and colour on a noisy background."""
    from PIL import ImageDraw

    background = tuple(int(v) for v in rng.integers(0, 120, 3))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    colour = tuple(int(v) for v in rng.integers(130, 256, 3))
    box = (cx - r, cy - r, cx + r, cy + r)
    width = max(2, r // 3)
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "ring":
        draw.ellipse(box, outline=colour, width=width)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif kind == "diamond":
        draw.polygon([(cx, cy - r), (cx - r, cy), (cx, cy + r), (cx + r, cy)], fill=colour)
    elif kind == "cross":
        draw.rectangle((cx - r, cy - width, cx + r, cy + width), fill=colour)
        draw.rectangle((cx - width, cy - r, cx + width, cy + r), fill=colour)
    elif kind == "hbar":
        draw.rectangle((cx - r, cy - width, cx + r, cy + width), fill=colour)
    elif kind == "vbar":
        draw.rectangle((cx - width, cy - r, cx + width, cy + r), fill=colour)
    arr = np.asarray(img, np.float32) + rng.normal(0, 18, (size, size, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def make_shapes_dataset(
    root: Path, kinds=SHAPES_B, per_class: int = 30, size: int = 32, seed: int = 0
) -> Path:
    """Class folders of drawn shapes (PNG)."""
    rng = np.random.default_rng(seed)
    for kind in kinds:
        for i in range(per_class):
            write(root / kind / f"{kind}_{i:03d}.png", encode(draw_shape(kind, size, rng), "PNG"))
    return root


def pretrain_shapes_backbone(
    path: Path, size: int = 32, per_class: int = 250, epochs: int = 8, seed: int = 0
):
    """A small CNN classifier trained on SHAPES_A, saved as .keras: 'the model I trained last year'."""
    return pretrain_source_model(path, SHAPES_A, size=size, per_class=per_class, epochs=epochs, seed=seed)


SHAPES_C = ("ring", "diamond", "hbar", "vbar", "xcross")  # five classes, none of them pretrained


def _draw_xcross(draw, cx: int, cy: int, r: int, width: int, colour) -> None:
    draw.line((cx - r, cy - r, cx + r, cy + r), fill=colour, width=width)
    draw.line((cx - r, cy + r, cx + r, cy - r), fill=colour, width=width)


GLYPHS_A = tuple("ABCDEFGH")  # a source model's classes: letters
GLYPHS_B = tuple("01234")  # the transfer task's classes: digits


def draw_glyph(char: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A printed character at a random place, scale and slant, light on dark with noise."""
    from PIL import ImageDraw, ImageFont

    scale = int(rng.integers(size // 2, size - 4))
    try:
        font = ImageFont.load_default(size=scale)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    canvas = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 3), char, fill=255, font=font)
    canvas = canvas.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR)
    box = canvas.getbbox() or (0, 0, size, size)
    glyph = canvas.crop(box)
    glyph.thumbnail((size - 2, size - 2))
    out = Image.new("L", (size, size), 0)
    x = int(rng.integers(0, size - glyph.width + 1))
    y = int(rng.integers(0, size - glyph.height + 1))
    out.paste(glyph, (x, y))
    ink = rng.integers(150, 256, 3)
    paper = rng.integers(0, 90, 3)
    alpha = np.asarray(out, np.float32)[..., None] / 255.0
    arr = paper * (1 - alpha) + ink * alpha + rng.normal(0, 16, (size, size, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


TEXTURES_A = ("hstripes", "checker", "dots", "blobs")
TEXTURES_B = ("vstripes", "dstripes", "grid", "rings", "speckle")


def draw_texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A patch of a periodic or random texture with random period, phase and colours."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = float(rng.uniform(4, 9))
    phase = float(rng.uniform(0, 2 * np.pi))
    w = 2 * np.pi / period
    if kind == "hstripes":
        v = np.sin(w * yy + phase)
    elif kind == "vstripes":
        v = np.sin(w * xx + phase)
    elif kind == "dstripes":
        v = np.sin(w * (xx + yy) / np.sqrt(2) + phase)
    elif kind == "checker":
        v = np.sign(np.sin(w * xx + phase)) * np.sign(np.sin(w * yy + phase))
    elif kind == "grid":
        v = np.maximum(np.cos(w * xx + phase), np.cos(w * yy + phase)) * 2 - 1
    elif kind == "dots":
        v = np.cos(w * xx + phase) * np.cos(w * yy + phase) * 2 - 0.8
    elif kind == "rings":
        cx, cy = rng.uniform(0, size, 2)
        v = np.sin(w * np.hypot(xx - cx, yy - cy) + phase)
    elif kind == "blobs":
        v = np.zeros_like(xx)
        for _ in range(6):
            cx, cy = rng.uniform(0, size, 2)
            v += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * period**2))
        v = v / v.max() * 2 - 1
    else:  # speckle: fine random noise
        v = rng.choice([-1.0, 1.0], (size, size)).astype(np.float32)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = ((v + 1) / 2)[..., None]
    arr = a * (1 - t) + b * t + rng.normal(0, 12, (size, size, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def draw_any(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A shape, a glyph or a texture, by class name."""
    if kind == "xcross":
        from PIL import ImageDraw

        background = tuple(int(v) for v in rng.integers(0, 120, 3))
        img = Image.new("RGB", (size, size), background)
        r = int(rng.integers(size // 6, size // 3))
        cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
        colour = tuple(int(v) for v in rng.integers(130, 256, 3))
        _draw_xcross(ImageDraw.Draw(img), cx, cy, r, max(2, r // 3), colour)
        arr = np.asarray(img, np.float32) + rng.normal(0, 18, (size, size, 3))
        return np.clip(arr, 0, 255).astype(np.uint8)
    if len(kind) == 1:
        return draw_glyph(kind, size, rng)
    if kind in TEXTURES_A + TEXTURES_B:
        return draw_texture(kind, size, rng)
    return draw_shape(kind, size, rng)


def make_drawn_dataset(root: Path, kinds, per_class: int = 30, size: int = 32, seed: int = 0) -> Path:
    """Class folders of drawn images of any kind (PNG); class folders named ``c_<kind>`` for glyphs."""
    rng = np.random.default_rng(seed)
    for kind in kinds:
        folder = f"c_{kind}" if len(kind) == 1 else kind
        for i in range(per_class):
            write(root / folder / f"{folder}_{i:03d}.png", encode(draw_any(kind, size, rng), "PNG"))
    return root


def pretrain_source_model(
    path: Path, kinds, size: int = 32, per_class: int = 250, epochs: int = 8, seed: int = 0
):
    """A small CNN classifier trained on ``kinds``, saved as .keras: a user's own source model."""
    import keras

    rng = np.random.default_rng(seed + 100)
    x = np.stack([draw_any(k, size, rng) for k in kinds for _ in range(per_class)]).astype("float32")
    y = np.repeat(np.arange(len(kinds)), per_class)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    h = keras.layers.Rescaling(1 / 255.0)(inputs)
    for i, filters in enumerate((16, 32, 64)):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(h)
        h = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(h)
        h = keras.layers.ReLU(name=f"relu{i}")(h)
        h = keras.layers.MaxPooling2D(name=f"pool{i}")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = keras.layers.Dense(len(kinds), activation="softmax", name="old_top")(h)
    model = keras.Model(inputs, outputs, name="source_cnn")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=epochs, batch_size=64, shuffle=True, verbose=0, validation_split=0.1)
    model.save(path)
    return path, history.history["val_accuracy"][-1]


class FakeNvml:
    """NVML's calls that gpu_monitor makes, for two GPUs."""

    def __init__(self, busy=(87, 3)):
        self.busy = busy

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.busy)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        return types.SimpleNamespace(gpu=self.busy[h], memory=10)

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(used=(h + 1) * 2**30, total=16 * 2**30, free=0)


def photo(seed: int, side: int = 160) -> Image.Image:
    """A photo-like picture: smooth random shapes of colour with some fine texture."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.int16) + rng.integers(-25, 25, (side, side, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def solid(rgb, seed: int) -> bytes:
    """A 32×32 PNG of one colour with a little noise."""
    rng = np.random.default_rng(seed)
    return encode(np.clip(rng.normal(rgb, 6, (32, 32, 3)), 0, 255).astype(np.uint8), "PNG")


def make_unlabelled_colours(folder: Path, colour_data: Path) -> Path:
    """Unlabelled images for a colour run: clear reds, greens and blues; colours half-way between
    two classes (in ``mixed/``); a copy of a labelled image; a file that is not an image."""
    import shutil

    for i in range(4):
        for name, rgb in COLOURS.items():
            write(folder / f"clear_{name}_{i}.png", solid(rgb, i))
    red, green, blue = (np.array(c) for c in COLOURS.values())
    for i, mix in enumerate(((red + blue) / 2, (red + green) / 2, (green + blue) / 2)):
        write(folder / "mixed" / f"between_{i}.png", solid(mix, 10 + i))
    shutil.copy(sorted((colour_data / "red").glob("*.png"))[0], folder / "already.png")
    write(folder / "notes.png", b"not an image at all")
    return folder


MULTI_LABEL_COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 220, 30),
    "blue": (30, 30, 220),
    "yellow": (220, 220, 30),
}


def make_multilabel_csv(
    root: Path, n: int = 48, size: int = 32, seed: int = 0, shares: dict[str, float] | None = None
) -> Path:
    """``root/labels.csv`` over ``n`` PNGs in ``root/images``: each label is its colour in its own
    quadrant of a grey picture; every label is on about 40% of the images (``shares`` may set a
    label's own chance), some images have none."""
    rng = np.random.default_rng(seed)
    names = sorted(MULTI_LABEL_COLOURS)
    half = size // 2
    rows = ["path,labels"]
    for i in range(n):
        present = [name for name in names if rng.random() < (shares or {}).get(name, 0.4)]
        if i < len(names) * 2:  # every label at least twice, and images with several labels
            present = sorted(
                {names[i % len(names)], names[(i + 1) % len(names)]} if i % 2 else {names[i % 4]}
            )
        img = np.clip(rng.normal(128, 20, (size, size, 3)), 0, 255)
        for q, name in enumerate(names):
            if name in present:
                y, x = (q // 2) * half, (q % 2) * half
                img[y : y + half, x : x + half] = np.clip(
                    rng.normal(MULTI_LABEL_COLOURS[name], 15, (half, half, 3)), 0, 255
                )
        write(root / "images" / f"{i:03d}.png", encode(img.astype(np.uint8), "PNG"))
        rows.append(f"images/{i:03d}.png,{';'.join(present)}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root / "labels.csv"
