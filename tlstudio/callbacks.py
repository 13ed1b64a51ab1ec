"""TL Studio's recipe for your own ``model.fit``: warm-up + cosine rates, per-block learning rates, early
stopping with the best weights, WiSE-FT (these import Keras; ``import tlstudio`` alone does not).

Example:
    A small backbone (a nested model named ``backbone``) and a new head, fitted with the recipe's parts:

    >>> import keras
    >>> import numpy as np
    >>> from tlstudio.callbacks import (
    ...     LayerwiseLearningRates, TransferModel, WarmupCosine, WiSEFT, early_stopping)
    >>> keras.utils.set_random_seed(0)
    >>> x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype("float32")
    >>> y = (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32")
    >>> features = keras.Input((8, 8, 3))
    >>> h = keras.layers.Conv2D(4, 3, activation="relu", name="block1_conv")(features)
    >>> h = keras.layers.Conv2D(4, 3, activation="relu", name="block2_conv")(h)
    >>> backbone = keras.Model(features, h, name="backbone")
    >>> inputs = keras.Input((8, 8, 3))
    >>> pooled = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    >>> model = TransferModel(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    >>> rate = WarmupCosine(1e-2, total_steps=3 * 4, warmup_steps=2)  # 3 epochs of 4 steps
    >>> model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy")
    >>> layerwise, wise = LayerwiseLearningRates(decay=0.5), WiSEFT((x[48:], y[48:]))
    >>> history = model.fit(
    ...     x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=3, batch_size=12, verbose=0,
    ...     callbacks=[layerwise, early_stopping(patience=2), wise])
    >>> layerwise.counts  # variables per multiplier: block2 (the top) at 0.5, block1 at 0.25
    {0.25: 2, 0.5: 2, 1.0: 2}
    >>> wise.alpha in (0.0, 0.25, 0.5, 0.75, 1.0), len(wise.tried)
    (True, 5)
"""

from __future__ import annotations

from tlstudio.core.backbone.classifier import TransferModel
from tlstudio.core.training.recipe_callbacks import (
    LayerwiseLearningRates,
    WiSEFT,
    early_stopping,
    mix_weights,
)
from tlstudio.core.training.schedules import WarmupCosine

__all__ = [
    "LayerwiseLearningRates",
    "TransferModel",
    "WarmupCosine",
    "WiSEFT",
    "early_stopping",
    "mix_weights",
]
