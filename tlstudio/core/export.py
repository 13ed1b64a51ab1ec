"""Export: a SavedModel that serves raw pixels, verified by reloading it, written atomically.

Signatures of ``saved_model/``:
- ``serving_default``: ``images`` float32 [batch, height, width, 3], RGB 0–255, any size;
- ``serving_uint8``: the same with uint8 pixels.
Both resize to the model's input size inside (bilinear, antialiased), run the preprocessing and
the network, and return ``probabilities`` [batch, classes], ``class_index`` and ``label``.
Beside it: ``model.keras`` (plain Keras layers), ``labels.txt`` and ``metadata.json`` (both also
inside ``saved_model/assets/`` so the folder is self-contained).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core.model import plain_copy

TOLERANCE = 1e-4


class ExportError(Exception):
    """The export could not be written or did not verify."""


@dataclass(frozen=True)
class ExportResult:
    """Where the export went and how well the reloaded model matched."""

    export_dir: Path
    saved_model: Path
    max_abs_difference: float


def export_model(
    model: keras.Model,
    out_dir: str | os.PathLike[str],
    *,
    labels: list[str],
    image_size: int,
    metadata: dict[str, object] | None = None,
    samples: np.ndarray | None = None,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Write ``out_dir/saved_model``, ``model.keras``, ``labels.txt`` and ``metadata.json``.

    Every artefact is first written next to its final place and renamed into it only after the
    SavedModel, reloaded with plain ``tf.saved_model.load``, reproduced the in-memory model's
    probabilities on ``samples`` (uint8 images) within ``tolerance``.

    Raises:
        ExportError: when writing fails or the reloaded model disagrees.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = plain_copy(model)
    if samples is None:
        samples = np.random.default_rng(0).integers(0, 256, (4, image_size, image_size, 3), dtype=np.uint8)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        saved = staging / "saved_model"
        _write_saved_model(plain, saved, labels, image_size)
        difference = verify_saved_model(saved, plain, samples, labels, tolerance)
        plain.save(staging / "model.keras")
        (staging / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        meta = dict(metadata or {}) | {
            "classes": labels,
            "image_size": image_size,
            "verification_max_abs_difference": difference,
        }
        meta_text = json.dumps(meta, indent=2, default=str, ensure_ascii=False)
        (staging / "metadata.json").write_text(meta_text, encoding="utf-8")
        (saved / "assets" / "metadata.json").write_text(meta_text, encoding="utf-8")
        for name in ("saved_model", "model.keras", "labels.txt", "metadata.json"):
            _replace(staging / name, out_dir / name)
    except ExportError:
        raise
    except Exception as err:
        raise ExportError(f"export failed: {type(err).__name__}: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir, out_dir / "saved_model", difference)


def _write_saved_model(model: keras.Model, path: Path, labels: list[str], image_size: int) -> None:
    label_table = tf.constant(labels)

    def classify(images):
        images = tf.cast(images, tf.float32)
        resized = tf.cond(
            tf.logical_and(tf.shape(images)[1] == image_size, tf.shape(images)[2] == image_size),
            lambda: images,
            lambda: tf.image.resize(images, (image_size, image_size), antialias=True),
        )
        probabilities = model(resized, training=False)
        index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_index": index, "label": tf.gather(label_table, index)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        classify,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "serving_uint8",
        classify,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.write_out(str(path), verbose=False)
    assets = path / "assets"
    assets.mkdir(exist_ok=True)
    (assets / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")


def verify_saved_model(
    path: Path, model: keras.Model, samples: np.ndarray, labels: list[str], tolerance: float = TOLERANCE
) -> float:
    """Reload with plain TensorFlow and compare with ``model``; returns the largest difference."""
    loaded = tf.saved_model.load(str(path))
    expected = np.asarray(model(samples.astype(np.float32), training=False))
    worst = 0.0
    for name, batch in (("serving_default", samples.astype(np.float32)), ("serving_uint8", samples)):
        out = loaded.signatures[name](images=tf.constant(batch))
        got = out["probabilities"].numpy()
        worst = max(worst, float(np.max(np.abs(got - expected))))
        names = [s.decode() for s in out["label"].numpy()]
        if names != [labels[i] for i in np.argmax(got, axis=-1)]:
            raise ExportError(f"{name}: labels do not match the probabilities")
    if not worst <= tolerance:
        raise ExportError(
            f"the reloaded SavedModel differs from the trained model by {worst:.2e} "
            f"(tolerance {tolerance:.0e}); the export was not written"
        )
    return worst


def _replace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; an existing ``dst`` is moved aside first and removed after."""
    old = None
    if dst.exists():
        old = dst.with_name(f".old-{dst.name}-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
