"""Distillation's loss and metrics against an independent computation (NumPy, Keras' own KL divergence)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlstudio.core.training.distill_data import (
    Agreement,
    LabelledAccuracy,
    distillation_loss,
    pack_targets,
    teacher_probabilities,
)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("temperature, weight", [(4.0, 0.9), (1.0, 0.5), (2.5, 0.0), (3.0, 1.0)])
def test_the_loss_is_hintons_kl_times_t_squared_plus_the_hard_cross_entropy(temperature, weight):
    rng = np.random.default_rng(0)
    teacher_logits = rng.normal(0, 3, (6, 4))
    teacher = softmax(teacher_logits).astype(np.float32)
    logits = rng.normal(0, 2, (6, 4)).astype(np.float32)
    labels = np.array([0, 3, -1, 2, -1, 1])  # -1: unlabelled
    got = np.asarray(distillation_loss(temperature, weight)(pack_targets(teacher, labels), logits))
    soft_t, soft_s = softmax(teacher_logits / temperature), softmax(logits / temperature)
    kl = np.sum(soft_t * np.log(soft_t / soft_s), axis=1)
    ce = np.where(labels >= 0, -np.log(softmax(logits)[np.arange(6), np.maximum(labels, 0)]), 0.0)
    np.testing.assert_allclose(got, weight * kl * temperature**2 + (1 - weight) * ce, rtol=1e-4, atol=1e-5)
    keras_kl = keras.losses.KLDivergence(reduction=None)(soft_t, soft_s)  # the library's own KL
    np.testing.assert_allclose(kl, np.asarray(keras_kl), rtol=1e-3, atol=1e-5)


def test_agreement_counts_every_image_and_accuracy_only_the_labelled_ones():
    teacher = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    labels = np.array([0, 0, -1, 1])
    logits = np.array([[2.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 2.0]], np.float32)  # top-1: 0, 0, 1, 1
    agreement, accuracy = Agreement(), LabelledAccuracy()
    agreement.update_state(pack_targets(teacher, labels), logits)
    accuracy.update_state(pack_targets(teacher, labels), logits)
    assert float(agreement.result()) == pytest.approx(2 / 4)  # images 0 and 3 agree
    assert float(accuracy.result()) == pytest.approx(3 / 3)  # the unlabelled image is not counted


def test_the_teachers_probabilities_keep_their_rows_and_skip_a_broken_file(tmp_path):
    from PIL import Image

    from tlstudio.core.data.pipeline import LoadErrors

    paths = []
    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"no image")
    paths.insert(1, tmp_path / "bad.png")
    errors = LoadErrors()

    def mean_brightness(batch: np.ndarray) -> np.ndarray:
        m = batch.mean(axis=(1, 2, 3)) / 255.0
        return np.stack([m, 1 - m], axis=1)

    probs, loaded = teacher_probabilities(mean_brightness, paths, 8, errors)
    assert loaded.tolist() == [True, False, True, True]
    np.testing.assert_allclose(probs[:, 0], [0.0, 0.0, 60 / 255, 120 / 255], atol=1e-6)
    assert [p for p, _ in errors.items()] == [str(tmp_path / "bad.png")]
