"""Export: a SavedModel that serves raw pixels, verified by reloading it, written atomically.

Entry points of ``saved_model/`` (all take ``images`` [batch, height, width, 3], RGB 0–255, any
size; they resize to the model's input size inside with converter-friendly ops — ``fit_to_size`` —
then run the preprocessing and the network). Every signature converts with
``tf.lite.TFLiteConverter.from_saved_model`` (builtin ops only) and with tf2onnx as shipped:
- ``loaded.serve(images)``: float32, uint8 or float64 tensors; returns probabilities [batch, classes]
  (the same call ``model.export`` gives in Keras);
- signature ``serving_default`` (float32) and ``serving_uint8`` (uint8): ``{"output_0": probabilities}``;
- signature ``classify`` (float32): ``probabilities``, ``class_index`` and ``label``.
Beside it: ``model.keras`` (plain Keras layers), ``labels.txt`` and ``metadata.json`` (both also
inside ``saved_model/assets/`` so the folder is self-contained), and for a multi-label model (sigmoid
outputs: an independent probability per label) ``thresholds.json``, each label's decision threshold.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core import atomic
from tlstudio.core.backbone.classifier import plain_copy
from tlstudio.core.backbone.graph_ops import loaded_problem
from tlstudio.core.backbone.kerashub import load_model_file
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_folder import process_alive

TOLERANCE = 1e-4
HALF_PRECISION_TOLERANCE = 1e-2  # float16 compute: eager and graph sum in different orders
SERVE_DTYPES = (tf.float32, tf.uint8, tf.float64)
SUPERSAMPLE = 4  # larger images: bilinear to 4x the input size, then a 4x4 average


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
    metadata: dict[str, Any] | None = None,  # JSON-ready (multi-label: "thresholds", one per label)
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
    if any(layer.compute_dtype in ("float16", "bfloat16") for layer in _all_layers(model)):
        tolerance = max(tolerance, HALF_PRECISION_TOLERANCE)
    if samples is None:
        samples = np.random.default_rng(0).integers(0, 256, (4, image_size, image_size, 3), dtype=np.uint8)
    clean_leftovers(out_dir)
    staging = atomic.staging_folder(out_dir, f".export-{os.getpid()}-")
    try:
        saved = staging / files.SAVED_MODEL
        _write_saved_model(plain, saved, labels, image_size)
        difference = verify_saved_model(saved, plain, samples, labels, tolerance)
        plain.save(staging / files.MODEL)
        (staging / files.LABELS).write_text("\n".join(labels) + "\n", encoding="utf-8")
        names = [files.SAVED_MODEL, files.MODEL, files.LABELS]
        if (thresholds := (metadata or {}).get("thresholds")) is not None:  # multi-label
            text = json.dumps(dict(zip(labels, thresholds, strict=True)), indent=2, ensure_ascii=False)
            for folder in (staging, saved / "assets"):
                (folder / files.THRESHOLDS).write_text(text, encoding="utf-8")
            names.append(files.THRESHOLDS)
        meta = dict(metadata or {}) | {
            "classes": labels,
            "image_size": image_size,
            "verification_max_abs_difference": difference,
            "export_id": uuid.uuid4().hex,  # the same inside saved_model/assets: the set belongs together
        }
        meta_text = json.dumps(meta, indent=2, default=str, ensure_ascii=False)
        (staging / files.METADATA).write_text(meta_text, encoding="utf-8")
        (saved / "assets" / files.METADATA).write_text(meta_text, encoding="utf-8")
        # metadata.json last: a set whose top-level export_id differs from the SavedModel's was cut
        # short while being replaced (a kill between renames), and load_exported refuses it
        for name in [*names, files.METADATA]:
            _replace(staging / name, out_dir / name)
    except ExportError:
        raise
    except Exception as err:
        raise ExportError(f"export failed: {type(err).__name__}: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir, out_dir / files.SAVED_MODEL, difference)


def fit_to_size(images, image_size: int, supersample: int = SUPERSAMPLE):
    """Resize a batch to ``image_size`` square with ops every converter knows (ResizeBilinear,
    AveragePool2D, SelectV2), so the SavedModel converts to TFLite and ONNX as it is.

    Larger images are resized bilinearly to ``supersample`` times the size and averaged down
    (an antialiased downscale, close to the Pillow resize training used); an image of the right
    size passes unchanged; smaller ones are resized bilinearly. No ``tf.cond``: both results have
    the same static shape and one is selected.
    """
    images = tf.cast(images, tf.float32)
    size = (image_size, image_size)
    direct = tf.image.resize(images, size, method="bilinear", antialias=False)
    big = tf.image.resize(images, (image_size * supersample,) * 2, method="bilinear", antialias=False)
    pooled = tf.nn.avg_pool2d(big, supersample, supersample, "VALID")
    shape = tf.shape(images)
    larger = tf.logical_or(shape[1] > image_size, shape[2] > image_size)
    return tf.where(larger, pooled, direct)


def _write_saved_model(model: keras.Model, path: Path, labels: list[str], image_size: int) -> None:
    label_table = tf.constant(labels)

    def probabilities(images):
        return model(fit_to_size(images, image_size), training=False)

    def classify(images):
        probs = probabilities(images)
        index = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return {"probabilities": probs, "class_index": index, "label": tf.gather(label_table, index)}

    serve = tf.function(probabilities)
    for dtype in SERVE_DTYPES:  # `serve` dispatches on the input's dtype
        serve.get_concrete_function(tf.TensorSpec([None, None, None, 3], dtype))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", probabilities, input_signature=[_spec(tf.float32)])
    archive.add_endpoint("serve", serve)
    archive.add_endpoint("serving_uint8", probabilities, input_signature=[_spec(tf.uint8)])
    archive.add_endpoint("classify", classify, input_signature=[_spec(tf.float32)])
    archive.write_out(str(path), verbose=False)
    assets = path / "assets"
    assets.mkdir(exist_ok=True)
    (assets / files.LABELS).write_text("\n".join(labels) + "\n", encoding="utf-8")


def _spec(dtype) -> tf.TensorSpec:
    return tf.TensorSpec([None, None, None, 3], dtype, name="images")


def verify_saved_model(
    path: Path, model: keras.Model, samples: np.ndarray, labels: list[str], tolerance: float = TOLERANCE
) -> float:
    """Reload with plain TensorFlow, call every entry point, compare with ``model``.

    Returns:
        The largest absolute difference in probabilities.
    """
    loaded = tf.saved_model.load(str(path))
    if problem := loaded_problem(loaded):  # never shipped: whoever serves it would run it
        raise ExportError(f"the exported model reaches outside itself: {problem}; nothing was put in place")
    expected = np.asarray(model(samples.astype(np.float32), training=False))
    outputs = {
        "serving_default": loaded.signatures["serving_default"](images=tf.constant(samples, tf.float32))[
            "output_0"
        ],
        "serving_uint8": loaded.signatures["serving_uint8"](images=tf.constant(samples))["output_0"],
    }
    for dtype in SERVE_DTYPES:
        outputs[f"serve({dtype.name})"] = loaded.serve(tf.constant(samples.astype(dtype.as_numpy_dtype)))
    classified = loaded.signatures["classify"](images=tf.constant(samples, tf.float32))
    outputs["classify"] = classified["probabilities"]
    worst = 0.0
    for name, got in outputs.items():
        difference = float(np.max(np.abs(np.asarray(got) - expected)))
        if not difference <= tolerance:
            raise ExportError(
                f"the reloaded SavedModel ({name}) differs from the trained model by "
                f"{difference:.2e} (tolerance {tolerance:.0e}); the export was not written"
            )
        worst = max(worst, difference)
    names = [s.decode() for s in classified["label"].numpy()]
    if names != [labels[i] for i in np.argmax(expected, axis=-1)]:
        raise ExportError("classify: labels do not match the probabilities")
    return worst


def clean_leftovers(folder: Path) -> None:
    """Remove staging and set-aside folders a killed export left in ``folder`` (not a live one's)."""
    for leftover in list(folder.glob(".export-*")) + list(folder.glob(".old-*")):
        pid = (
            leftover.name.split("-")[1]
            if leftover.name.startswith(".export-")
            else leftover.name.rsplit("-", 1)[-1]
        )
        if pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid)):
            continue
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def _replace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; an existing ``dst`` is moved aside first and removed after."""
    old = None
    if dst.exists():
        old = dst.with_name(f".old-{dst.name}-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def export_run(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> ExportResult:
    """Export a finished run's model (its ``model.keras``) again, into another folder.

    The run's labels, input size and metadata are carried over; the new SavedModel is verified
    against the reloaded Keras model on the run's test images (or random ones).
    """
    run_dir = Path(run_dir)
    metadata = json.loads((run_dir / files.METADATA).read_text(encoding="utf-8"))
    model = load_model_file(run_dir / files.MODEL)
    return export_model(
        model,
        out_dir,
        labels=list(metadata["classes"]),
        image_size=int(metadata["image_size"]),
        metadata={k: v for k, v in metadata.items() if k != "verification_max_abs_difference"},
    )


def _all_layers(model: keras.Model):
    return model._flatten_layers(include_self=False, recursive=True)
