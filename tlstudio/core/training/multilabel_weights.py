"""Class weights for multi-label data: a positive weight per label in the binary cross-entropy.

``balanced`` weighs each label's positives by negatives / positives in the training split (clipped to
``MULTI_LABEL_MAX_POS_WEIGHT``), so a rare label counts as much as a common one; ``auto`` does so only
when some label is rarer than the imbalance rule's ratio (``IMBALANCE_WARNING_RATIO`` negatives a
positive); ``none`` never. The same weights go into the probe's fit and the fine-tune's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import numpy as np

from tlstudio.core import events as ev
from tlstudio.core.data.health import IMBALANCE_WARNING_RATIO
from tlstudio.core.settings import MULTI_LABEL_MAX_POS_WEIGHT

if TYPE_CHECKING:
    from tlstudio.core.training.run_state import RunState

EPSILON = 1e-7  # probabilities are clipped to [ε, 1 - ε], as Keras' binary cross-entropy does


@dataclass(frozen=True)
class PositiveWeights:
    """What the run weighs: ``weights`` (one per label, model order) or None, and why in words."""

    weights: np.ndarray | None
    note: str | None  # said to the user: why nothing is weighed, or which labels could not be

    def by_label(self, labels: list[str]) -> dict[str, float] | None:
        """The weights by label name (``run.json``), or None when unweighted."""
        if self.weights is None:
            return None
        return {name: round(float(w), 4) for name, w in zip(labels, self.weights, strict=True)}


def positive_weights(mode: str, targets: np.ndarray, labels: list[str]) -> PositiveWeights:
    """Each label's positive weight for ``class_weights`` = ``mode`` on the training split.

    Args:
        mode: ``none``, ``balanced``, or ``auto`` (balanced only when some label has more than
            ``IMBALANCE_WARNING_RATIO`` negatives per positive).
        targets: (images, labels) 0/1 indicators of the training split.
        labels: the label names, in the model's order.

    Returns:
        The weights (None: unweighted) and, when ``balanced`` could not apply to a label or to any,
        a sentence that says so.

    Example:
        >>> positive_weights("balanced", np.array([[1, 0], [0, 1], [0, 1]]), ["a", "b"]).weights
        array([2. , 0.5])
    """
    y = np.asarray(targets) > 0.5
    positives = y.sum(0).astype(np.float64)
    negatives = len(y) - positives
    usable = (positives > 0) & (negatives > 0)
    if mode == "none" or not len(y):
        return PositiveWeights(None, None)
    if not usable.any():
        return PositiveWeights(
            None, "class weights not used: no label has both images with it and without it in training"
        )
    ratios = np.where(usable, negatives / np.maximum(positives, 1.0), 1.0)
    if mode == "auto" and ratios.max() <= IMBALANCE_WARNING_RATIO:
        return PositiveWeights(None, None)
    weights = np.clip(ratios, 1.0 / MULTI_LABEL_MAX_POS_WEIGHT, MULTI_LABEL_MAX_POS_WEIGHT)
    note = None
    if not usable.all():
        left = ", ".join(name for name, ok in zip(labels, usable, strict=True) if not ok)
        note = (
            f"class weights: {left} left at 1 (every training image has it, or none does: "
            "no balance to restore)"
        )
    return PositiveWeights(weights, note)


@keras.saving.register_keras_serializable(package="tlstudio")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy on sigmoid probabilities with a positive weight per label.

    Args:
        pos_weight: one weight per label, in the model's output order.
    """

    def __init__(self, pos_weight, name: str = "weighted_binary_crossentropy", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.pos_weight = [float(w) for w in pos_weight]

    def call(self, y_true, y_pred):
        ops = keras.ops
        p = ops.clip(ops.cast(y_pred, "float32"), EPSILON, 1 - EPSILON)
        y = ops.cast(y_true, "float32")
        w = ops.convert_to_tensor(self.pos_weight, dtype="float32")
        return -ops.mean(w * y * ops.log(p) + (1 - y) * ops.log(1 - p), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "pos_weight": self.pos_weight}


def choose_for_run(session: RunState, train) -> dict[int, float] | None:
    """Decide the run's class weights from ``settings.class_weights`` and its training split.

    Sets ``session.pos_weight`` (multi-label: the loss's per-label weights, or None) and
    ``session.class_weights`` (the weights by name for ``run.json``, or None), and says in a
    ``RecipeChanged`` event why ``balanced`` could not be used where it could not.

    Returns:
        Keras' ``class_weight`` for single-label data (None for multi-label data or unweighted).
    """
    from tlstudio.core.data.health import class_weights_for
    from tlstudio.core.data.pipeline import multi_hot

    assert session.manifest is not None  # (set before training starts)
    classes, mode = session.manifest.classes, session.settings.class_weights
    if not session.manifest.multi_label:
        weight = class_weights_for(mode, [e.label for e in train], classes)
        session.class_weights = None if weight is None else {classes[i]: w for i, w in weight.items()}
        return weight
    chosen = positive_weights(mode, multi_hot([e.labels for e in train], classes), classes)
    session.pos_weight, session.class_weights = chosen.weights, chosen.by_label(classes)
    if chosen.note:  # (only ``balanced``, or ``auto`` once it weighs, can leave a label out)
        session.emit(ev.RecipeChanged(chosen.note))
    return None
