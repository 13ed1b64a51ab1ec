"""Backbone + head assembly, and a model whose train step supports per-group learning rates.

The classifier takes raw 0–255 RGB pixels: preprocessing layers come first, then the backbone
(a nested model named ``backbone``), then the head: global pooling, dropout, optional dense
layers, softmax (sigmoid for multi-label data).

BatchNorm: in Keras 3.15 a nested model called as ``backbone(x, training=False)`` inside a
functional model does *not* stay in inference mode during ``fit`` — the functional graph injects
the outer call's ``training=True`` over the recorded argument (keras/src/models/functional.py,
``operation_fn``; our test shows the moving statistics change). What does keep a BatchNorm layer in
inference mode is ``trainable = False``, which is how freeze plans keep BatchNorm frozen.

Keras 3 has no per-layer learning rates (keras-team/keras#21741), so ``TransferModel`` overrides
``train_step`` to hand each group of variables to its own optimizer whose learning rate is the base
rate times the group's multiplier. This is the TensorFlow trainer's own step with the single
``apply_gradients`` replaced by one per group.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core.backbone.block_tokens import BlockTokensBackbone, choose_probe_features
from tlstudio.core.backbone.layer_tree import head_pooling
from tlstudio.core.backbone.preprocessing import preprocessing_layers
from tlstudio.core.settings import HeadSettings, TrainSettings


@keras.saving.register_keras_serializable(package="tlstudio")
class TransferModel(keras.Model):
    """A functional model with optional discriminative (per variable group) learning rates."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lr = _LearningRateGroups()  # a plain holder: Keras must not save these optimizers

    def clear_lr_multipliers(self) -> None:
        """Back to one optimizer for every variable (a new phase without per-block rates)."""
        self._lr = _LearningRateGroups()

    def set_lr_multipliers(self, multiplier_of: Callable[[keras.Variable], float]) -> dict[float, int]:
        """After ``compile``: give each trainable variable the multiplier ``multiplier_of(var)``.

        Variables with multiplier 1 use the compiled optimizer; every other multiplier gets a
        fresh optimizer of the same kind and settings at ``learning_rate * multiplier``.

        Returns:
            {multiplier: number of variables}.
        """
        base = self.optimizer
        if base is None:
            raise RuntimeError("compile the model before setting learning-rate multipliers")
        base = getattr(base, "inner_optimizer", base)  # under mixed float16: the loss-scaled optimizer
        schedule = getattr(base, "_learning_rate", None)
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) or not hasattr(
            schedule, "scaled"
        ):
            schedule = None
        base_lr = None if schedule else float(keras.ops.convert_to_numpy(base.learning_rate))
        self._lr.groups = []
        self._lr.group_of_var = {}
        counts: dict[float, int] = {}
        by_multiplier: dict[float, list[keras.Variable]] = {}
        for var in self.trainable_weights:
            m = float(multiplier_of(var))
            by_multiplier.setdefault(m, []).append(var)
            counts[m] = counts.get(m, 0) + 1
        if not self.optimizer.built:  # it updates the multiplier-1 variables only
            self.optimizer.build(by_multiplier.get(1.0, []))
        for m, variables in sorted(by_multiplier.items()):
            if m == 1.0:
                continue
            rate = schedule.scaled(m) if schedule else base_lr * m
            config = base.get_config() | {"learning_rate": rate, "name": f"{base.name}_x{m:g}"}
            optimizer = base.__class__.from_config(config)
            optimizer.build(variables)
            for var in variables:
                self._lr.group_of_var[id(var)] = len(self._lr.groups)
            self._lr.groups.append((m, optimizer))
        return counts

    def train_step(self, data):
        if not self._lr.groups:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
            loss_for_gradients = self.optimizer.scale_loss(loss)
        self.apply_gradient_groups(tape.gradient(loss_for_gradients, self.trainable_weights))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def apply_gradient_groups(self, gradients: list) -> None:
        """Apply the gradients of ``trainable_weights`` (of a loss scaled with
        ``optimizer.scale_loss``): each learning-rate group with its own optimizer."""
        variables = self.trainable_weights
        if not self._lr.groups:
            self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return
        scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        scale = tf.convert_to_tensor(self.optimizer.dynamic_scale) if scaled else None
        groups = [[] for _ in range(len(self._lr.groups) + 1)]  # no annotation: autograph
        for grad, var in zip(gradients, variables, strict=True):
            groups[self._lr.group_of_var.get(id(var), -1) + 1].append((grad, var))
        if groups[0]:
            self.optimizer.apply_gradients(groups[0])  # a loss-scale optimizer unscales its own share

        def apply_groups():
            for (_, optimizer), pairs in zip(self._lr.groups, groups[1:], strict=True):
                if pairs:
                    optimizer.apply_gradients([(g / scale if scaled else g, v) for g, v in pairs])

        if scaled:  # like the loss-scale optimizer: skip the step when the scaled gradients overflowed
            finite = tf.reduce_all(
                [tf.reduce_all(tf.math.is_finite(g)) for pairs in groups[1:] for g, _ in pairs]
            )
            tf.cond(finite, lambda: apply_groups() or tf.constant(True), lambda: tf.constant(False))
        else:
            apply_groups()


class _LearningRateGroups:
    """Extra optimizers per multiplier, and which group each variable belongs to."""

    def __init__(self) -> None:
        self.groups: list[tuple[float, keras.optimizers.Optimizer]] = []
        self.group_of_var: dict[int, int] = {}


def build_classifier(
    backbone: keras.Model,
    num_classes: int,
    image_size: int,
    *,
    preprocessing: str = "none",
    head: HeadSettings | None = None,
    class_token: bool = False,
    multi_label: bool = False,
) -> TransferModel:
    """Put preprocessing, the backbone and a new head together.

    Args:
        backbone: a model named ``backbone`` whose output is a feature map or a feature vector.
        num_classes: size of the softmax output.
        image_size: square input size in pixels.
        preprocessing: a mode of ``preprocessing.PREPROCESSING_MODES``.
        head: pooling, dropout and dense sizes.
        class_token: the backbone returns tokens whose first one summarises the image (ViT, DeiT,
            DINOv2): the head reads that token (plain Keras layers: a crop, then a flatten).
        multi_label: sigmoid outputs (an independent probability per label) instead of softmax.
    """
    head = head or HeadSettings()
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = inputs
    for layer in preprocessing_layers(preprocessing):
        x = layer(x)
    x = backbone(x)
    first = head_pooling(head.pooling, len(x.shape), class_token)
    if first == "class token":
        x = keras.layers.Cropping1D((0, int(x.shape[1]) - 1), name="head_class_token")(x)
        x = keras.layers.Flatten(name="head_pool")(x)
    elif first == "Flatten":
        x = keras.layers.Flatten(name="head_flatten")(x)
    elif first != "none":  # global pooling of a feature map, or of tokens without a class token (Swin)
        x = getattr(keras.layers, first)(name="head_pool")(x)
    if head.dropout > 0:
        x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
    for i, units in enumerate(head.dense_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
        if head.dropout > 0:
            x = keras.layers.Dropout(head.dropout, name=f"head_dropout_{i}")(x)
    activation = "sigmoid" if multi_label else "softmax"
    outputs = keras.layers.Dense(num_classes, activation=activation, dtype="float32", name="predictions")(x)
    return TransferModel(inputs, outputs, name="tlstudio_classifier")


def classifier_for(
    backbone: keras.Model,
    spec,
    settings: TrainSettings,
    num_classes: int,
    image_size: int,
    *,
    multi_label: bool = False,
) -> TransferModel:
    """``build_classifier`` as a run builds it: the settings' preprocessing (else the backbone's),
    the settings' head, and the spec's class-token pooling; with ``probe_features`` "last4" the
    backbone's output is DINOv2's linear4 vector (``block_tokens.BlockTokensBackbone``).

    Args:
        backbone: from ``build_backbone(spec, …)``.
        spec: the backbone's ``BackboneSpec``.
        settings: the run's settings.
        num_classes: outputs of the head.
        image_size: square input size in pixels.
        multi_label: sigmoid outputs (the data's task kind, ``Manifest.multi_label``).

    Raises:
        BackboneError: ``last4`` asked of a backbone or a run it does not suit.
    """
    if choose_probe_features(settings, spec)[0] == "last4":
        backbone = BlockTokensBackbone(backbone)
    return build_classifier(
        backbone,
        num_classes,
        image_size,
        preprocessing=settings.preprocessing or spec.preprocessing,
        head=settings.head,
        class_token=spec.class_token,
        multi_label=multi_label,
    )


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> int:
    """Set every BatchNormalization layer's momentum (a run from scratch needs statistics that
    follow its weights within the run). Returns how many layers were changed."""
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def reset_batchnorm_statistics(model: keras.Model, images) -> int:
    """Set every trainable BatchNorm layer's moving mean and variance to the statistics of
    ``images`` (one forward pass in training mode with momentum 0). Returns the layers reset."""
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        model(images, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return len(layers)


def apply_chain(layers, x):
    """Call ``layers`` one after the other on ``x``. A TL Studio classifier is such a chain
    (preprocessing → backbone → head), so parts of it can be rebuilt around a new input."""
    for layer in layers:
        x = layer(x)
    return x


def plain_copy(model: keras.Model) -> keras.Model:
    """The same layers as a plain functional ``keras.Model`` (loadable without TL Studio)."""
    return keras.Model(model.input, model.output, name=model.name)


def scale_outputs(model: keras.Model, scale, shift) -> None:
    """Make the ``predictions`` layer's logits a·z + b per output (Platt scaling baked in): kernel·a,
    bias·a + b. ``scale`` and ``shift`` hold one value per output."""
    layer = model.get_layer("predictions")
    kernel, bias = layer.get_weights()
    a, b = np.asarray(scale, kernel.dtype), np.asarray(shift, bias.dtype)
    layer.set_weights([kernel * a, bias * a + b])
