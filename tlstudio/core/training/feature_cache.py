"""The frozen-feature cache: a frozen backbone's pooled features, computed once per content.

With the backbone frozen and no augmentation, the backbone computes the same features for an image
every epoch; they are computed once, saved atomically in ``RUN/features/KEY/SPLIT.npz`` and the head
trains on them. KEY is a hash of everything the features depend on — the manifest (file contents by
hash), the backbone's *weights* (not its path: a model file retrained at the same path gets a new
key), the image size, the extractor's layers and the cache format version — so a cache can never be
stale.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from tlstudio.core import atomic
from tlstudio.core.backbone.classifier import apply_chain
from tlstudio.core.training.callbacks import StopRequested
from tlstudio.core.training.interrupt import FirstBatchInterrupt

FORMAT_VERSION = "features-2"


def feature_cut(model: keras.Model) -> int:
    """Index in ``model.layers`` of the layer whose output are the features (pooled, or flat)."""
    names = [layer.name for layer in model.layers]
    cut = next((n for n in ("head_pool", "head_flatten") if n in names), "backbone")
    return names.index(cut)


def feature_extractor(model: keras.Model) -> keras.Model:
    """Preprocessing, backbone and pooling of a TL Studio classifier, as a model of their own."""
    position = feature_cut(model)
    pixels = keras.Input(model.inputs[0].shape[1:])
    return keras.Model(pixels, apply_chain(model.layers[1 : position + 1], pixels))


def head_model(model: keras.Model, feature_shape) -> keras.Model:
    """The head layers alone (shared with ``model``), taking features."""
    inputs = keras.Input(feature_shape, name="features")
    layers = model.layers[feature_cut(model) + 1 :]
    return keras.Model(inputs, apply_chain(layers, inputs), name="head_on_cached_features")


def weights_fingerprint(model: keras.Model) -> str:
    """A hash of every weight's name, shape and values."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{weight.path}:{value.shape}:{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def feature_key(extractor: keras.Model, manifest_fingerprint: str, image_size: int) -> str:
    """What the features depend on, hashed."""
    layers = ",".join(f"{layer.name}:{type(layer).__name__}" for layer in extractor.layers)
    parts = [FORMAT_VERSION, manifest_fingerprint, weights_fingerprint(extractor), image_size, layers]
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]


def cached_features(
    extractor: keras.Model,
    batches: Callable[[], object],
    path: Path | None,
    stop: threading.Event,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The features and labels of one split: read from ``path`` when there, else computed from
    ``batches()`` (a dataset of (pixels, labels)) and written atomically to ``path`` (None: not saved);
    ``progress(images done)`` after each batch.

    Raises:
        StopRequested: when ``stop`` is set between batches, or during the first one.
    """
    if path is not None and path.is_file():
        with np.load(path) as saved:
            return saved["features"], saved["labels"]
    features, labels, done = [], [], 0
    at_once = FirstBatchInterrupt(stop)  # the first batch traces the backbone: slow
    try:
        for x, y in batches():
            if stop.is_set():
                raise StopRequested()
            if not features:
                at_once.arm()
            features.append(np.asarray(extractor.predict_on_batch(x), dtype=np.float32))
            at_once.disarm()
            labels.append(np.asarray(y))
            done += len(features[-1])
            if progress is not None:
                progress(done)
    finally:
        at_once.close()
    out = np.concatenate(features), np.concatenate(labels)
    if path is not None:
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, features=out[0], labels=out[1])
    return out
