"""Greedy checkpoint soup (``core/training/soup.py``) on a tiny Keras model: which epochs go in, and the
weights the model ends with."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlstudio.core.training.soup import Candidate, SoupCandidates, average, greedy_soup, val_scores


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(hidden)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    return x, y


def evaluator(model, x, y):
    def evaluate():
        measured = val_scores(model, [(x, y)])
        return measured["val_loss"], measured["val_accuracy"]

    return evaluate


def snapshot(model) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in model.trainable_variables]


def test_a_soup_of_identical_checkpoints_equals_them(task):
    x, y = task
    model = tiny_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, verbose=0)
    same = snapshot(model)
    candidates = [Candidate(e, 0.5, 0.8, [w.copy() for w in same]) for e in (4, 2, 7)]
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])  # the soup must set every one
    result = greedy_soup(model.trainable_variables, candidates, evaluator(model, x, y))
    assert result.ingredients == [2, 4, 7]  # ties in loss: earlier epoch first; none raised the loss
    assert result.val_loss == pytest.approx(result.best_val_loss)
    for got, want in zip(snapshot(model), same, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_checkpoint_that_hurts_validation_is_rejected_and_one_that_helps_is_taken(task):
    x, y = task
    model = tiny_model()
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20, verbose=0)
    good = snapshot(model)
    rng = np.random.default_rng(1)
    noise = [rng.normal(scale=0.05, size=w.shape).astype("float32") for w in good]
    near_a = [w + n for w, n in zip(good, noise, strict=True)]
    near_b = [w - n for w, n in zip(good, noise, strict=True)]  # their mean is ``good``
    ruined = [rng.normal(scale=3.0, size=w.shape).astype("float32") for w in good]
    evaluate = evaluator(model, x, y)
    scored = []
    for epoch, weights in ((1, near_a), (2, near_b), (3, ruined)):
        for v, w in zip(model.trainable_variables, weights, strict=True):
            v.assign(w)
        loss, accuracy = evaluate()
        scored.append(Candidate(epoch, loss, accuracy, weights))
    result = greedy_soup(model.trainable_variables, scored, evaluate)
    assert 3 not in result.ingredients  # averaging in the ruined weights raised the loss
    assert [t["accepted"] for t in result.tried if t["epoch"] == 3] == [False]
    assert sorted(result.ingredients) == [1, 2]
    assert result.val_loss <= result.best_val_loss
    for got, want in zip(snapshot(model), average([near_a, near_b]), strict=True):  # the soup's weights
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    record = result.to_dict()
    assert record["used"] and record["kept"] == 3 and record["gain_val_loss"] >= 0


def test_the_callback_keeps_only_the_best_epochs(task):
    x, y = task
    model = tiny_model()
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    kept = SoupCandidates(model.trainable_variables, keep=3)
    history = model.fit(x, y, validation_data=(x, y), epochs=8, verbose=0, callbacks=[kept])
    losses = history.history["val_loss"]
    best = sorted(range(len(losses)), key=lambda e: losses[e])[:3]
    assert [c.epoch for c in kept.candidates] == best
    assert [c.val_loss for c in kept.candidates] == pytest.approx(sorted(losses)[:3])
    assert all(len(c.weights) == len(model.trainable_variables) for c in kept.candidates)
