"""tf.data input pipeline from a split manifest: decode, resize, cache, shuffle, batch, augment.

Images are decoded with the same code the dataset doctor uses (Pillow: EXIF orientation, CMYK,
16-bit, palette and alpha handled), inside parallel ``tf.numpy_function`` calls. A file that fails
to load is recorded in ``LoadErrors`` and dropped from the stream instead of stopping training.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tlstudio.core.data.imagefile import ImageProblem, load_rgb
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import ManifestEntry
from tlstudio.core.settings import SEED, Augmentation

MEMORY_CACHE_LIMIT = 1_500_000_000  # bytes of decoded pixels kept in memory by "auto" caching


class LoadErrors:
    """Files that failed to load during training, collected from pipeline threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, str] = {}

    def add(self, path: str, reason: str) -> None:
        """Record a failure (once per file)."""
        with self._lock:
            self._items.setdefault(path, reason)

    def items(self) -> list[tuple[str, str]]:
        """(path, reason) pairs, sorted."""
        with self._lock:
            return sorted(self._items.items())


def load_for_model(path: str | Path, image_size: int) -> np.ndarray:
    """One image as uint8 RGB of ``image_size``², resized the way training resizes."""
    return resize_for_model(load_rgb(path, draft_size=(image_size, image_size)), image_size)


def resize_for_model(image: Image.Image | np.ndarray, image_size: int) -> np.ndarray:
    """An RGB image (Pillow, or uint8 pixels such as a video frame) as uint8 RGB of ``image_size``²,
    resized the way training resizes."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def make_dataset(
    entries: Sequence[ManifestEntry],
    root: str | Path,
    classes: Sequence[str],
    image_size: int,
    batch_size: int,
    *,
    training: bool = False,
    seed: int = SEED,
    augmentation: Augmentation | None = None,
    cache: str = "auto",
    errors: LoadErrors | None = None,
    multi_label: bool = False,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0–255, int32 labels) for the given manifest entries; multi-label:
    (pixels, float32 0/1 indicators [batch, labels]).

    Args:
        entries: manifest rows (one split).
        root: the data folder the manifest's paths are relative to.
        classes: class names in label-index order.
        image_size: square size every image is resized to.
        batch_size: images per batch.
        training: shuffle (seeded, reshuffled each epoch) and augment.
        seed: for shuffling and augmentation.
        augmentation: random transforms for training batches.
        cache: "memory", "none", a file path prefix for an on-disk cache, or "auto" (memory when
            the decoded pixels fit in ``MEMORY_CACHE_LIMIT``, else none: streamed from disk).
        errors: where files that fail to load are recorded.
        multi_label: the entries carry any number of labels (``ManifestEntry.labels``).
    """
    errors = errors if errors is not None else LoadErrors()
    index = {name: i for i, name in enumerate(classes)}
    paths = [str(in_folder(root, e.path)) for e in entries]
    if multi_label:
        labels = multi_hot([e.labels for e in entries], classes)
    else:
        labels = np.array([index[e.label] for e in entries], dtype=np.int32)
    if cache == "auto":
        cache = "memory" if len(entries) * image_size * image_size * 3 <= MEMORY_CACHE_LIMIT else "none"

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    streaming = cache == "none"
    if training and streaming:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = decode_images(ds, image_size, errors)
    if cache == "memory":
        ds = ds.cache()
    elif not streaming:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(str(cache))
    if training and not streaming:
        ds = ds.shuffle(min(len(paths), 10_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(to_float)
    if training and augmentation is not None and augmentation.active:
        layers = augmentation.layers(seed)

        def augment(x, y):
            for layer in layers:
                x = layer(x, training=True)
            return x, y

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def multi_hot(label_sets: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """(images, labels) float32 0/1: which of ``classes`` each image carries."""
    index = {name: i for i, name in enumerate(classes)}
    out = np.zeros((len(label_sets), len(classes)), np.float32)
    for row, labels in enumerate(label_sets):
        out[row, [index[label] for label in labels]] = 1.0
    return out


def decode_images(ds: tf.data.Dataset, image_size: int, errors: LoadErrors) -> tf.data.Dataset:
    """(path, target) pairs to (pixels, target): each image decoded as training sees it (upright,
    RGB, ``image_size``² uint8); one that fails to load is recorded in ``errors`` and dropped.

    Args:
        ds: a dataset of (path string, target) pairs.
        image_size: the square side.
        errors: where the files that fail are named.

    Returns:
        The decoded dataset, in the same order.
    """

    def load(path: bytes) -> tuple[np.ndarray, bool]:
        name = path.decode("utf-8", "surrogateescape")
        try:
            return load_for_model(name, image_size), True
        except (ImageProblem, OSError, ValueError) as err:
            errors.add(name, str(err))
            return np.zeros((image_size, image_size, 3), np.uint8), False

    def decode(path, target):
        pixels, ok = tf.numpy_function(load, [path], (tf.uint8, tf.bool), stateful=False)
        pixels.set_shape((image_size, image_size, 3))
        ok.set_shape(())
        return pixels, target, ok

    def readable(pixels, target, ok):
        return ok

    def without_flag(pixels, target, ok):
        return pixels, target

    # (named functions: AutoGraph cannot read two lambdas on one line and warns on every run)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.filter(readable).map(without_flag)


def to_float(pixels, target):
    """A batch's uint8 pixels as float32 (the model's input), its targets as they are."""
    return tf.cast(pixels, tf.float32), target


def warm_up_tf_data() -> None:
    """Build and run a tiny pipeline like the training one, so the one-time cost of TensorFlow's
    tf.data machinery (seen as a ~250 ms GIL-holding stall) is paid now, not while training."""
    import numpy as np
    import tensorflow as tf

    ds = (
        tf.data.Dataset.from_tensor_slices(["x"])
        .map(
            lambda p: tf.numpy_function(lambda _: np.zeros(1, np.uint8), [p], tf.uint8),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .filter(lambda x: True)
        .cache()
        .batch(1)
    )
    for _ in ds:
        pass
