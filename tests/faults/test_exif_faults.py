"""A phone photo stored rotated with an EXIF orientation: `tlstudio predict` and the exported
SavedModel's `serving_bytes`, reloaded in a fresh process as TF Serving would, give it the same class.

Before, `serving_bytes` decoded the stored pixels as they are: on a model whose classes depend on
the picture's direction, it gave the other class for most rotated files, and the export check said
100 % agreement because it fed no encoded files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from factory import encode, write
from PIL import Image

pytestmark = pytest.mark.slow
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
UNDO = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def tlstudio(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tlstudio", *args], capture_output=True, text=True, env=ENV, timeout=900
    )


def stripes(direction: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Stripes across (``horizontal``) or down (``vertical``) the picture: a 90° turn swaps the class."""
    period = int(rng.integers(6, 10))
    phase = int(rng.integers(0, period))
    on = ((np.arange(size) + phase) % period) < period // 2
    mask = np.repeat(on[:, None], size, 1) if direction == "horizontal" else np.repeat(on[None, :], size, 0)
    light, dark = rng.integers(150, 256, 3), rng.integers(0, 90, 3)
    img = np.where(mask[..., None], light, dark) + rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def exif(orientation: int) -> bytes:
    data = Image.Exif()
    data[0x0112] = orientation
    return data.tobytes()


SERVE = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
files = [open(p, "rb").read() for p in sys.argv[2:]]
out = loaded.signatures["serving_bytes"](image_bytes=tf.constant(files))
print(json.dumps([s.decode() for s in out["label"].numpy()]))
"""


def serving_bytes_labels(saved_model: Path, files: list[Path]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SERVE, str(saved_model), *map(str, files)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_predict_and_the_reloaded_serving_bytes_agree_on_rotated_jpegs(tiny_backbone_file, tmp_path):
    rng = np.random.default_rng(7)
    data = tmp_path / "data"
    for direction in ("horizontal", "vertical"):
        for i in range(16):
            write(data / direction / f"{direction}_{i:02d}.png", encode(stripes(direction, rng), "PNG"))
    run = tmp_path / "run"
    trained = tlstudio(
        "train", str(data), "--backbone", str(tiny_backbone_file), "--out", str(run),
        "--batch-size", "8", "--fine-tune-epochs", "0",
    )  # fmt: skip
    assert trained.returncode in (0, 3), trained.stderr[-2000:]
    exported = tlstudio("export", str(run), "--format", "saved_model")
    assert exported.returncode == 0, exported.stdout[-2000:] + exported.stderr[-2000:]
    meta = json.loads((run / "export" / "saved_model" / "model.json").read_text())
    assert meta["verification"]["encoded_files"] == 11  # the check fed it rotated files

    photos = tmp_path / "photos"
    upright_files, rotated_files, stripped_files, truth = [], [], [], []
    for i in range(20):
        direction = ("horizontal", "vertical")[i % 2]
        orientation = (6, 8, 3)[i % 3]
        picture = Image.fromarray(stripes(direction, rng))
        stored = picture.transpose(UNDO[orientation])
        upright_files.append(write(photos / f"upright_{i:02d}.jpg", encode(picture, "JPEG", quality=95)))
        rotated_files.append(
            write(photos / f"rotated_{i:02d}.jpg", encode(stored, "JPEG", quality=95, exif=exif(orientation)))
        )
        # the same stored pixels without the orientation: what serving_bytes used to see
        stripped_files.append(write(photos / f"stripped_{i:02d}.jpg", encode(stored, "JPEG", quality=95)))
        truth.append(direction)

    files = [str(p) for p in rotated_files + upright_files]
    predicted = tlstudio("predict", str(run / "export" / "saved_model"), *files, "--json", "--top", "1")
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    labels = [item["top"][0]["label"] for item in json.loads(predicted.stdout)]
    by_predict, by_predict_upright = labels[:20], labels[20:]
    assert by_predict == by_predict_upright  # predict applies the orientation (Pillow)

    saved_model = run / "export" / "saved_model" / "saved_model"
    served = serving_bytes_labels(saved_model, rotated_files + stripped_files)
    by_serving, by_serving_stripped = served[:20], served[20:]
    assert by_serving == by_predict, list(zip(rotated_files, by_serving, by_predict, strict=True))
    # the files are a real test: read as stored, most of them get the other class
    assert sum(a != b for a, b in zip(by_serving_stripped, by_predict, strict=True)) >= 10
    assert sum(a == b for a, b in zip(by_predict, truth, strict=True)) >= 16  # the model learnt the direction
