"""The recipe's parts as Keras callbacks for any ``model.fit``: early stopping with the best weights,
per-block learning rates (each lower block slower) and WiSE-FT weight interpolation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tlstudio.core.backbone.classifier import TransferModel
from tlstudio.core.backbone.freezing import variable_multipliers
from tlstudio.core.backbone.layer_tree import build_layer_tree
from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.settings import EARLY_STOPPING_MIN_DELTA, defaults
from tlstudio.core.training.recipe import WISE_ALPHAS

_D = defaults()


def early_stopping(
    patience: int = _D.early_stopping_patience,
    *,
    monitor: str = "val_loss",
    start_from_epoch: int = 0,
) -> keras.callbacks.EarlyStopping:
    """The recipe's early stopping: on validation loss, a fall smaller than ``EARLY_STOPPING_MIN_DELTA``
    counted as none, the best weights restored at the end.

    Args:
        patience: epochs without improvement before stopping.
        monitor: the logged value watched (lower is better).
        start_from_epoch: epochs before stopping may start (the recipe waits out its warm-up).

    Returns:
        A configured ``keras.callbacks.EarlyStopping``.
    """
    return keras.callbacks.EarlyStopping(
        monitor=monitor,
        patience=patience,
        min_delta=EARLY_STOPPING_MIN_DELTA,
        restore_best_weights=True,
        start_from_epoch=start_from_epoch,
    )


def mix_weights(start: Sequence[np.ndarray], end: Sequence[np.ndarray], alpha: float) -> list[np.ndarray]:
    """WiSE-FT's mixture ``(1 - alpha)·start + alpha·end`` of two weight lists (``get_weights``);
    integer variables (counters) are taken from ``end``."""
    return [
        (1 - alpha) * a + alpha * b if a.dtype.kind == "f" else b for a, b in zip(start, end, strict=True)
    ]


class WiSEFT(keras.callbacks.Callback):
    """WiSE-FT (Wortsman et al., 2022): at the end of ``fit``, the weights become the mixture of the
    starting and the trained weights that scores the lowest loss on ``validation_data``.

    Put it after ``early_stopping()`` in the callback list: the best weights are restored first.

    Args:
        validation_data: a ``(x, y)`` tuple or a dataset, as ``model.evaluate`` takes it.
        alphas: the shares of the trained weights tried (0: the start, 1: the trained weights).
        start_weights: the weights to mix with (default: the model's when ``fit`` begins).

    Attributes:
        alpha: the chosen share, once ``fit`` has ended.
        tried: ``[{"alpha", "loss", …}]``, every mixture's validation scores.
    """

    def __init__(
        self,
        validation_data: Any,
        *,
        alphas: Sequence[float] = WISE_ALPHAS,
        start_weights: list[np.ndarray] | None = None,
    ):
        super().__init__()
        self.validation_data = validation_data
        self.alphas = tuple(alphas)
        self.start = start_weights
        self._given = start_weights is not None
        self.alpha: float | None = None
        self.tried: list[dict[str, float]] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self._given:
            self.start = self.model.get_weights()

    def on_train_end(self, logs: dict | None = None) -> None:
        assert self.start is not None  # (set when training began)
        end = self.model.get_weights()
        self.tried = []
        for alpha in self.alphas:
            self.model.set_weights(mix_weights(self.start, end, alpha))
            self.tried.append({"alpha": alpha, **self._scores()})
        chosen = min(self.tried, key=lambda t: (t["loss"], -t["alpha"]))  # a tie: the trained side
        self.alpha = chosen["alpha"]
        self.model.set_weights(mix_weights(self.start, end, self.alpha))

    def _scores(self) -> dict[str, float]:
        data = self.validation_data
        if isinstance(data, tuple):
            found = self.model.evaluate(*data, verbose=0, return_dict=True)
        else:
            found = self.model.evaluate(data, verbose=0, return_dict=True)
        return {k: float(v) for k, v in found.items()}


class LayerwiseLearningRates(keras.callbacks.Callback):
    """Discriminative learning rates in ``fit``, as the recipe's fine-tuning phase uses them.

    The backbone is the model's layer named ``backbone`` (as TL Studio names it), else the model
    itself; its blocks are those of TL Studio's layer tree. Each trainable block learns at ``decay``
    times the rate of the trainable block above it (the top one at ``decay``, the head at the full
    rate); ``blocks`` sets a block's multiplier outright. The model must be a ``TransferModel``
    (``TransferModel(inputs, outputs)`` in place of ``keras.Model(inputs, outputs)``): Keras 3 has no
    per-variable learning rates, and its train step gives each group its own optimizer. With a
    ``WarmupCosine`` rate, each group follows the same schedule, scaled.

    Args:
        decay: the multiplier per block going down (``None``: 1, only ``blocks`` count).
        blocks: ``{block name: multiplier}``, over the decay.

    Attributes:
        counts: ``{multiplier: number of variables}``, once ``fit`` has begun.
    """

    def __init__(
        self, decay: float | None = _D.fine_tune_lr_decay, *, blocks: Mapping[str, float] | None = None
    ):
        super().__init__()
        self.plan = FreezePlan(
            "custom", train_batchnorm=True, lr_decay=decay, block_lr=tuple(sorted((blocks or {}).items()))
        )
        self.counts: dict[float, int] = {}

    def set_model(self, model: keras.Model) -> None:  # before ``fit`` makes its train function
        super().set_model(model)
        if not isinstance(model, TransferModel):
            raise TypeError(
                f"LayerwiseLearningRates needs a TransferModel, not {type(model).__name__}: build the "
                "model as TransferModel(inputs, outputs) (from tlstudio.callbacks)"
            )
        if model.optimizer is None:
            raise RuntimeError("compile the model before fitting it with LayerwiseLearningRates")
        backbone = model.get_layer("backbone") if "backbone" in {x.name for x in model.layers} else model
        tree = build_layer_tree(backbone)
        unknown = {name for name, _ in self.plan.block_lr} - {b.name for b in tree.blocks}
        if unknown:
            names = ", ".join(b.name for b in tree.blocks)
            raise ValueError(f"no block {', '.join(sorted(unknown))} in the backbone (its blocks: {names})")
        frozen = frozenset(layer.name for layer in tree.layers if not layer.trainable)
        plan = FreezePlan(
            "custom",
            frozen_layers=frozen,
            train_batchnorm=True,
            block_lr=self.plan.block_lr,
            lr_decay=self.plan.lr_decay,
        )
        multipliers = variable_multipliers(model, plan)
        model.clear_lr_multipliers()
        self.counts = model.set_lr_multipliers(lambda var: multipliers.get(id(var), 1.0))
        model.train_function = None  # made again, with the groups (a second fit gets fresh ones)
