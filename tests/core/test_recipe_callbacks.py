"""``tlstudio.callbacks``: the recipe's parts in a plain ``model.fit`` do what they say, measured on the
weights; the module's example runs."""

from __future__ import annotations

import doctest

import keras
import numpy as np
import pytest

import tlstudio.callbacks
from tlstudio.callbacks import LayerwiseLearningRates, TransferModel, WiSEFT, early_stopping, mix_weights
from tlstudio.core.settings import EARLY_STOPPING_MIN_DELTA, defaults


def tiny(model_class=TransferModel):
    """A backbone of two named blocks (a nested model called ``backbone``) and a dense head."""
    features = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="block1_conv")(features)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="block2_conv")(h)
    backbone = keras.Model(features, h, name="backbone")
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    return model_class(inputs, keras.layers.Dense(2, activation="softmax", name="head")(pooled))


def data(n: int = 32):
    x = np.random.default_rng(0).normal(size=(n, 8, 8, 3)).astype("float32")
    return x, (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32")


def test_the_module_example_runs():
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(tlstudio.callbacks):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 15


def step_changes(callbacks) -> dict[str, np.ndarray]:
    """Each layer's kernel change after one plain-SGD step from the same start on the same batch."""
    keras.utils.set_random_seed(3)
    model = tiny()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x, y = data(8)
    names = ("block1_conv", "block2_conv")
    before = {n: model.get_layer("backbone").get_layer(n).kernel.numpy() for n in names}
    before["head"] = model.get_layer("head").kernel.numpy()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
    after = {n: model.get_layer("backbone").get_layer(n).kernel.numpy() for n in names}
    after["head"] = model.get_layer("head").kernel.numpy()
    return {n: after[n] - before[n] for n in before}


def test_each_lower_block_steps_at_decay_times_the_rate_of_the_block_above():
    plain = step_changes([])
    layerwise = LayerwiseLearningRates(decay=0.5)
    scaled = step_changes([layerwise])
    assert layerwise.counts == {0.25: 2, 0.5: 2, 1.0: 2}
    assert np.abs(plain["block1_conv"]).max() > 1e-6  # the block learns: the ratio means something
    np.testing.assert_allclose(
        scaled["block2_conv"], 0.5 * plain["block2_conv"], rtol=1e-3, atol=1e-7
    )  # (float32 weights)
    np.testing.assert_allclose(
        scaled["block1_conv"], 0.25 * plain["block1_conv"], rtol=1e-3, atol=1e-7
    )  # (float32 weights)
    np.testing.assert_allclose(scaled["head"], plain["head"], rtol=1e-3, atol=1e-7)  # (float32 weights)


def test_a_block_named_outright_takes_its_multiplier():
    plain = step_changes([])
    scaled = step_changes([LayerwiseLearningRates(None, blocks={"block1": 0.1})])
    np.testing.assert_allclose(
        scaled["block1_conv"], 0.1 * plain["block1_conv"], rtol=1e-3, atol=1e-7
    )  # (float32 weights)
    np.testing.assert_allclose(
        scaled["block2_conv"], plain["block2_conv"], rtol=1e-3, atol=1e-7
    )  # (float32 weights)


def test_layerwise_rates_refuse_what_they_cannot_do():
    x, y = data(8)
    model = tiny(keras.Model)
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="needs a TransferModel"):
        model.fit(x, y, verbose=0, callbacks=[LayerwiseLearningRates()])
    model = tiny()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="no block block9 in the backbone"):
        model.fit(x, y, verbose=0, callbacks=[LayerwiseLearningRates(blocks={"block9": 0.5})])


class Recorder(keras.callbacks.Callback):
    """The weights at the end of training, before the callbacks after it change them."""

    def on_train_end(self, logs=None):
        self.weights = self.model.get_weights()


def test_wise_ft_keeps_the_mixture_with_the_lowest_validation_loss():
    keras.utils.set_random_seed(0)
    model = tiny()
    model.compile(keras.optimizers.Adam(3e-2), "sparse_categorical_crossentropy")
    x, y = data(48)
    start = [np.random.default_rng(1).normal(size=w.shape).astype(w.dtype) for w in model.get_weights()]
    recorder, wise = Recorder(), WiSEFT((x[32:], y[32:]), start_weights=start)
    model.fit(x[:32], y[:32], epochs=4, batch_size=8, verbose=0, callbacks=[recorder, wise])
    losses = {t["alpha"]: t["loss"] for t in wise.tried}
    assert list(losses) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert wise.alpha == min(losses, key=lambda a: (losses[a], -a))
    assert wise.alpha > 0  # the random start scores far worse than training
    for got, want in zip(model.get_weights(), mix_weights(start, recorder.weights, wise.alpha), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert model.evaluate(x[32:], y[32:], verbose=0) == pytest.approx(losses[wise.alpha], rel=1e-5)


def test_early_stopping_is_the_recipes():
    found = early_stopping()
    assert found.patience == defaults().early_stopping_patience
    assert found.min_delta == EARLY_STOPPING_MIN_DELTA and found.restore_best_weights
    assert found.monitor == "val_loss"
