"""Distillation's pieces: the teacher's probabilities (computed once), the student's image stream, its loss.

The loss is Hinton et al.'s (2015): KL(teacher_T ‖ student_T) × T², where both distributions are
softened by the temperature T, weighed against the cross-entropy on the hard label. An unlabelled
image (hard label -1) contributes the soft term only. The teacher's softened distribution is
``softmax(log p / T)``, which equals ``softmax(z / T)`` for its logits z, so its served
probabilities are all that is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core.data.imagefile import ImageProblem
from tlstudio.core.data.pipeline import (
    MEMORY_CACHE_LIMIT,
    LoadErrors,
    decode_images,
    load_for_model,
    to_float,
)

BATCH = 64  # images per teacher call
TINY = 1e-30  # probabilities below this (float32 underflow) count as this before their log


def teacher_probabilities(
    predict: Callable[[np.ndarray], np.ndarray],
    paths: Sequence[str | Path],
    image_size: int,
    errors: LoadErrors,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's probabilities for every image, in order.

    Args:
        predict: uint8 RGB batch → probabilities (an ``ExportedModel.predict``).
        paths: the images (absolute paths).
        image_size: the teacher's input size.
        errors: where images that fail to load are recorded.
        progress: ``progress(done, total)`` after each batch.

    Returns:
        (probabilities [images, classes] float32, loaded [images] bool); rows of images that did not
        load are zeros.
    """
    loaded = np.zeros(len(paths), bool)
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, len(paths), BATCH):
        pixels, kept = [], []
        for i, path in enumerate(paths[start : start + BATCH], start=start):
            try:
                pixels.append(load_for_model(path, image_size))
                kept.append(i)
            except (ImageProblem, OSError, ValueError) as err:
                errors.add(str(path), str(err))
        if pixels:
            probs = np.asarray(predict(np.stack(pixels)), np.float32)
            loaded[kept] = True
            rows.append((np.array(kept), probs))
        if progress is not None:
            progress(min(start + BATCH, len(paths)), len(paths))
    width = rows[0][1].shape[1] if rows else 0
    out = np.zeros((len(paths), width), np.float32)
    for where, answered in rows:
        out[where] = answered
    return out, loaded


def image_stream(
    paths: Sequence[str | Path],
    targets: np.ndarray,
    image_size: int,
    batch_size: int,
    *,
    training: bool,
    seed: int,
    errors: LoadErrors,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0–255, targets) for the student, decoded the way training decodes.

    Args:
        paths: the images (absolute paths), each with its row of ``targets``.
        targets: [images, classes + 1]: the teacher's probabilities, then the hard label (-1: none).
        image_size: the student's input size.
        batch_size: images per batch.
        training: shuffled, reshuffled each epoch (seeded).
        seed: for the shuffle.
        errors: where images that fail to load are recorded (they are dropped).
    """
    names = [str(p) for p in paths]

    ds = decode_images(
        tf.data.Dataset.from_tensor_slices((names, targets.astype(np.float32))), image_size, errors
    )
    if len(names) * image_size * image_size * 3 <= MEMORY_CACHE_LIMIT:
        ds = ds.cache()  # decoded once: later epochs read memory
    if training:
        ds = ds.shuffle(max(len(names), 1), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).map(to_float).prefetch(tf.data.AUTOTUNE)


def pack_targets(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[images, classes + 1]: the teacher's probabilities, then the hard label index (-1: unlabelled)."""
    return np.concatenate([probabilities, labels.reshape(-1, 1).astype(np.float32)], axis=1)


class Distiller(keras.Model):
    """The student's logits (its softmax left out), so the loss can soften them; trains its weights.

    Args:
        student: a TL Studio classifier whose last layer is the Dense ``predictions``.
    """

    def __init__(self, student: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.head = student.get_layer("predictions")
        self.features = keras.Model(student.input, self.head.input)

    def call(self, x, training=False):
        """Logits of a batch."""
        f = self.features(x, training=training)
        return keras.ops.matmul(keras.ops.cast(f, "float32"), self.head.kernel) + self.head.bias


def distillation_loss(temperature: float, soft_weight: float):
    """The per-image loss of packed targets (``pack_targets``) and student logits.

    Args:
        temperature: T, softening both distributions.
        soft_weight: weight of the soft term (KL × T²); the hard cross-entropy gets the rest.

    Returns:
        ``loss(y_true, logits) -> [batch]``.
    """
    t = float(temperature)

    def distillation(y_true, logits):
        teacher, label = y_true[:, :-1], y_true[:, -1]
        soft_teacher = tf.nn.softmax(tf.math.log(tf.maximum(teacher, TINY)) / t)
        log_student = tf.nn.log_softmax(logits / t)
        kl = tf.reduce_sum(
            soft_teacher * (tf.math.log(tf.maximum(soft_teacher, TINY)) - log_student), axis=-1
        )
        labelled = label >= 0
        hard = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(tf.maximum(label, 0), tf.int32), logits=logits
        )
        hard = tf.where(labelled, hard, tf.zeros_like(hard))
        return soft_weight * kl * t * t + (1.0 - soft_weight) * hard

    return distillation


class Agreement(keras.metrics.Mean):
    """The share of images whose top-1 class is the teacher's."""

    def __init__(self, name: str = "agreement", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        same = tf.equal(tf.argmax(y_true[:, :-1], -1), tf.argmax(y_pred, -1))
        return super().update_state(tf.cast(same, tf.float32))


class LabelledAccuracy(keras.metrics.Mean):
    """Top-1 accuracy on the labelled images of a batch only (unlabelled ones are not counted)."""

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        label = y_true[:, -1]
        right = tf.cast(tf.equal(tf.cast(label, tf.int64), tf.argmax(y_pred, -1)), tf.float32)
        return super().update_state(right, sample_weight=tf.cast(label >= 0, tf.float32))
