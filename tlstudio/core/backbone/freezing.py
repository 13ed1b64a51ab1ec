"""Applying a freeze plan (``core/freeze_plan.py``): which backbone layers train, at which multiplier.

Presets: ``all`` (feature extraction: the whole backbone frozen), ``none`` (fine-tune everything),
``first:P%`` (freeze the first P percent of the backbone's parameters), ``top:N`` (train only the
top N blocks), and ``custom`` (an explicit set of frozen layers, as a tree view edits it).
BatchNorm layers stay frozen unless the plan says ``train_batchnorm`` (also those inside a composite
layer, as KerasHub's EfficientNet and MobileNet blocks are).
"""

from __future__ import annotations

from dataclasses import dataclass

from tlstudio.core.backbone.layer_tree import LayerTree, build_layer_tree, inner_batchnorm, named_leaf_layers
from tlstudio.core.freeze_plan import FreezePlan


@dataclass(frozen=True)
class FreezeSummary:
    """Parameter counts after applying a plan (backbone only, and the whole model)."""

    backbone_trainable: int
    backbone_frozen: int
    model_trainable: int
    model_frozen: int


def layer_states(tree: LayerTree, plan: FreezePlan) -> dict[str, bool]:
    """Trainable or not, per backbone layer name."""
    layers = tree.layers
    if plan.preset == "all":
        states = dict.fromkeys((layer.name for layer in layers), False)
    elif plan.preset == "none":
        states = dict.fromkeys((layer.name for layer in layers), True)
    elif plan.preset == "top":
        keep = {b.name for b in tree.blocks[len(tree.blocks) - int(plan.value) :]} if plan.value else set()
        states = {layer.name: b.name in keep for b in tree.blocks for layer in b.layers}
    elif plan.preset == "first":
        limit = tree.total_params * plan.value / 100.0
        states, seen = {}, 0
        for layer in layers:
            states[layer.name] = seen >= limit and not (plan.value >= 100)
            seen += layer.params
    else:
        states = {layer.name: layer.name not in plan.frozen_layers for layer in layers}
    if not plan.train_batchnorm:
        for layer in layers:
            if layer.is_batchnorm:
                states[layer.name] = False
    return states


def layer_lr_multipliers(tree: LayerTree, plan: FreezePlan) -> dict[str, float]:
    """Learning-rate multiplier per backbone layer name (the head always uses 1)."""
    explicit = dict(plan.block_lr)
    states = layer_states(tree, plan)
    trainable_blocks = [b for b in tree.blocks if any(states[layer.name] for layer in b.layers)]
    depth = {b.name: len(trainable_blocks) - i for i, b in enumerate(trainable_blocks)}
    out = {}
    for block in tree.blocks:
        if block.name in explicit:
            m = explicit[block.name]
        elif plan.lr_decay is not None and block.name in depth:
            m = plan.lr_decay ** depth[block.name]
        else:
            m = 1.0
        for layer in block.layers:
            out[layer.name] = float(m)
    return out


def apply_freeze_plan(model, plan: FreezePlan) -> FreezeSummary:
    """Set ``trainable`` on the backbone's layers (the model must be recompiled afterwards).

    ``model`` is a classifier holding a layer named ``backbone``, or the backbone itself.
    """
    backbone = _backbone_of(model)
    backbone.trainable = True
    tree = build_layer_tree(backbone)
    states = layer_states(tree, plan)
    for name, layer, _ in named_leaf_layers(backbone):
        if name in states:
            layer.trainable = states[name]
            if not plan.train_batchnorm:  # BatchNorm inside a composite block (KerasHub) stays frozen
                for batchnorm in inner_batchnorm(layer):
                    batchnorm.trainable = False
    if not any(states.values()):
        backbone.trainable = False
    return summarize(model)


def summarize(model) -> FreezeSummary:
    """Trainable and frozen parameter counts of the backbone and of the whole model."""
    backbone = _backbone_of(model)
    b_train = _count(backbone.trainable_weights)
    b_all = _count(backbone.weights)
    m_train = _count(model.trainable_weights)
    m_all = _count(model.weights)
    return FreezeSummary(b_train, b_all - b_train, m_train, m_all - m_train)


def variable_multipliers(model, plan: FreezePlan) -> dict[int, float]:
    """{id(variable): multiplier} for the backbone's trainable variables."""
    backbone = _backbone_of(model)
    per_layer = layer_lr_multipliers(build_layer_tree(backbone), plan)
    out = {}
    for name, layer, _ in named_leaf_layers(backbone):
        for var in layer.trainable_weights:
            out[id(var)] = per_layer.get(name, 1.0)
    return out


def _backbone_of(model):
    try:
        return model.get_layer("backbone")
    except ValueError:
        return model


def _count(weights) -> int:
    total = 0
    for w in weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n
    return total
