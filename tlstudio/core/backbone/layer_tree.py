"""The backbone as a tree of blocks and layers: pure data, ready for a tree view.

Blocks come from the naming conventions of Keras Applications and KerasHub (ResNet ``conv4_block3_*``
or ``stack2_block1_*``,
EfficientNet ``block6a_*``, MobileNet ``block_13_*`` / ``expanded_conv_3_*``, Inception
``mixed5``, ConvNeXt ``stage_2_block_1``, VGG/Xception ``block4_*``). Layers without such a name
join the block being built. A model that follows none of these conventions (a user's own) is cut
into blocks that end at each merge (Add, Concatenate) or pooling layer.

A layer that holds a stack of repeated composite layers (KerasHub's ``ViTEncoder`` holds its
``transformer_block_N`` layers, ``DINOV2Encoder`` its ``layers_N``) is opened up: each member of the
stack is a layer of the tree, named ``parent/member``, and a block of its own (a transformer layer
is a block), so freeze plans and per-block learning rates reach inside the encoder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Layer names that open (or continue) a block; group 1 is the block's name.
_BLOCK_PATTERNS = [
    re.compile(p)
    for p in (
        r"^(conv\d+_block\d+)_",  # ResNet, DenseNet
        r"^(stack\d+_block\d+)_",  # KerasHub ResNet, DenseNet
        r"^(transition\d+)_",  # KerasHub DenseNet transitions
        r"^(pool\d+)_",  # DenseNet transitions
        r"^(block\d+[a-z])_",  # EfficientNet, EfficientNetV2
        r"^(block_\d+)_",  # MobileNetV2
        r"^(expanded_conv(?:_\d+)?)_",  # MobileNetV2 first block, MobileNetV3
        r"^(block(?:35|17|8)_\d+)(?:_|$)",  # InceptionResNetV2
        r"(stage_\d+_block_\d+)_",  # ConvNeXt
        r"(downsampling_block_\d+)",  # ConvNeXt
        r"^(block\d+)_",  # VGG, Xception
        r"^((?:normal|reduction)_\w+?_(?:\d+|reduce_\d+|stem_\d+))$",  # NASNet cells, by suffix
        r"^(top|post)_",  # EfficientNet / ResNetV2 top layers
        r"^(Conv_1|conv_1)(?:_|$)",  # MobileNetV2 / V3 last convolution
    )
]
_BLOCK_END = re.compile(r"^(mixed(?:\d+|_\d+[a-z]))$")  # Inception: the layers up to 'mixedN' form that block
_NASNET_CELL = re.compile(r"_(\d+|reduce_\d+|stem_\d+)$")
_MERGE_OR_POOL = ("Add", "Concatenate", "Multiply", "MaxPooling2D", "AveragePooling2D")


@dataclass
class LayerNode:
    """One layer of the backbone."""

    name: str
    type: str
    output_shape: str
    params: int
    trainable_params: int
    trainable: bool
    is_batchnorm: bool
    holds_batchnorm: bool = False  # a composite layer (a KerasHub block) with BatchNorm inside


@dataclass
class BlockNode:
    """A block (stage, cell) of consecutive layers."""

    name: str
    layers: list[LayerNode] = field(default_factory=list)

    @property
    def params(self) -> int:
        """All parameters of the block."""
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        """Parameters that training will change."""
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def state(self) -> str:
        """ "trainable", "frozen" or "partial" (for a tri-state checkbox)."""
        weighted = [layer for layer in self.layers if layer.params]
        if not weighted:
            return "frozen" if not any(layer.trainable for layer in self.layers) else "trainable"
        if all(layer.trainable_params == layer.params for layer in weighted):
            return "trainable"
        if not any(layer.trainable_params for layer in weighted):
            return "frozen"
        return "partial"


@dataclass
class LayerTree:
    """The whole backbone: blocks in order, with parameter totals."""

    name: str
    blocks: list[BlockNode]
    output_rank: int = 4  # of the backbone's output: 4 a feature map, 3 tokens, 2 a vector
    class_token: bool = False  # tokens whose first one the head reads (ViT, DeiT, DINOv2)

    @property
    def layers(self) -> list[LayerNode]:
        """Every layer, in order."""
        return [layer for block in self.blocks for layer in block.layers]

    @property
    def total_params(self) -> int:
        """All parameters."""
        return sum(b.params for b in self.blocks)

    @property
    def trainable_params(self) -> int:
        """Parameters training will change."""
        return sum(b.trainable_params for b in self.blocks)

    @property
    def frozen_params(self) -> int:
        """Parameters training leaves alone."""
        return self.total_params - self.trainable_params

    def block(self, name: str) -> BlockNode:
        """A block by name."""
        for block in self.blocks:
            if block.name == name:
                return block
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "blocks": [
                {"name": b.name, "params": b.params, "state": b.state, "layers": [vars(x) for x in b.layers]}
                for b in self.blocks
            ],
        }


def named_leaf_layers(model) -> list[tuple[str, Any, str | None]]:
    """The model's layers in order as ``(name, layer, block)``: nested models (a user's model wrapping
    a Keras Application, say) replaced by their own layers, stacks of blocks opened up, input layers
    left out. ``name`` is what the tree and freeze plans use; ``block`` the block a stack member
    forms (None for every other layer). A member's block is its own
    name (``transformer_block_3``), or ``parent/member`` where two stacks use the same names (Swin's
    stages each hold a ``blocks_0``)."""
    out = _named_leaves(model)
    parents: dict[str, set[str]] = {}
    for name, _, block in out:
        if block is not None:
            parents.setdefault(block, set()).add(name.rsplit("/", 1)[0])
    if any(len(p) > 1 for p in parents.values()):
        out = [(name, layer, name if block is not None else None) for name, layer, block in out]
    return out


def _named_leaves(model) -> list[tuple[str, Any, str | None]]:
    import keras

    out: list[tuple[str, object, str | None]] = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if isinstance(layer, keras.Model) and layer.layers:
            out.extend(_named_leaves(layer))
            continue
        members = _stack_members(layer)
        if members is None:
            out.append((layer.name, layer, None))
            continue
        for sub, is_member in members:
            out.append((f"{layer.name}/{sub.name}", sub, sub.name if is_member else None))
    return out


def _stack_members(layer) -> list[tuple[Any, bool]] | None:
    """The direct sublayers of a layer made of a stack (two or more composite sublayers of one
    class, which hold all the layer's weights), each with whether it is a stack member."""
    subs = layer._flatten_layers(include_self=False, recursive=False)
    if len(subs) < 2 or sum(len(s.weights) for s in subs) != len(layer.weights):
        return None
    counts: dict[type, int] = {}
    for sub in subs:
        if sub.weights and sub._flatten_layers(include_self=False, recursive=False):
            counts[type(sub)] = counts.get(type(sub), 0) + 1
    repeated = {cls for cls, n in counts.items() if n >= 2}
    if not repeated:
        return None
    return [(sub, type(sub) in repeated) for sub in subs]


def head_pooling(pooling: str, output_rank: int, class_token: bool) -> str:
    """What the new head does first with the backbone's output: the one rule ``build_classifier``
    builds and the Layers panel shows.

    Args:
        pooling: the head's setting, "avg" or "max".
        output_rank: rank of the backbone's output (4: a feature map, 3: tokens, 2: a vector).
        class_token: the tokens' first one summarises the image.

    Returns:
        A Keras layer name, "class token" (a crop to the first token, then a flatten), or "none".
    """
    kind = "Max" if pooling == "max" else "Average"
    if output_rank == 4:
        return f"Global{kind}Pooling2D"
    if output_rank == 3:
        return "class token" if class_token else f"Global{kind}Pooling1D"
    return "none" if output_rank == 2 else "Flatten"


def build_layer_tree(backbone, class_token: bool = False) -> LayerTree:
    """Group a Keras model's layers into blocks (see the module docstring); ``class_token`` as the
    backbone's spec says."""
    named = named_leaf_layers(backbone)
    layers = [layer for _, layer, _ in named]
    forced = [block for _, _, block in named]
    names = _named_blocks(layers, forced)
    if set(names) <= {"stem", "top"}:
        names = _structural_blocks(layers)
    blocks: list[BlockNode] = []
    for (name, layer, _), block_name in zip(named, names, strict=True):
        if not blocks or blocks[-1].name != block_name:
            blocks.append(BlockNode(block_name))
        blocks[-1].layers.append(_layer_node(layer, name))
    rank = len(backbone.outputs[0].shape)
    return LayerTree(backbone.name, _merge_repeated(blocks), rank, class_token and rank == 3)


def _named_blocks(layers, forced: list[str | None]) -> list[str]:
    """Block name per layer from naming conventions (or ``forced``: the stack members' blocks).

    Unnamed layers join the current block; in models with 'mixedN'-style block ends (Inception),
    they join the next named block instead, since there a block's branches come before its name.
    """
    end_style = any(_BLOCK_END.match(layer.name) for layer in layers)
    names: list[str] = []
    pending: list[int] = []
    current = "stem"
    for i, layer in enumerate(layers):
        if block := forced[i]:
            current = block
            names.append(current)
            continue
        match = next((m for p in _BLOCK_PATTERNS if (m := p.search(layer.name))), None)
        end = _BLOCK_END.match(layer.name)
        if match or end:
            current = _block_name(match.group(1)) if match else layer.name
            for j in pending:
                names[j] = current
            pending = []
            names.append(current)
        else:
            names.append(current)
            if end_style:
                pending.append(i)
    for j in pending:
        names[j] = "top"
    return names


def _block_name(raw: str) -> str:
    if raw in ("top", "post", "Conv_1", "conv_1"):
        return "top"
    cell = _NASNET_CELL.search(raw)
    if raw.startswith(("normal_", "reduction_")) and cell:
        return f"cell_{cell.group(1)}"
    return raw


def _structural_blocks(layers) -> list[str]:
    names, index = [], 1
    for layer in layers:
        names.append(f"block_{index}")
        if type(layer).__name__ in _MERGE_OR_POOL:
            index += 1
    return names


def _merge_repeated(blocks: list[BlockNode]) -> list[BlockNode]:
    """Join non-adjacent runs of the same block name (a shortcut layer can interrupt a block)."""
    merged: dict[str, BlockNode] = {}
    for block in blocks:
        if block.name in merged:
            merged[block.name].layers.extend(block.layers)
        else:
            merged[block.name] = BlockNode(block.name, list(block.layers))
    return list(merged.values())


def _layer_node(layer, name: str) -> LayerNode:
    try:
        shape = tuple(layer.output.shape)[1:]
        output_shape = "×".join("?" if d is None else str(d) for d in shape)
    except (AttributeError, ValueError):
        output_shape = "?"
    params = int(sum(_size(w) for w in layer.weights))
    trainable_params = int(sum(_size(w) for w in layer.trainable_weights))
    return LayerNode(
        name=name,
        type=type(layer).__name__,
        output_shape=output_shape,
        params=params,
        trainable_params=trainable_params,
        trainable=bool(layer.trainable),
        is_batchnorm=type(layer).__name__ == "BatchNormalization",
        holds_batchnorm=bool(inner_batchnorm(layer)),
    )


def inner_batchnorm(layer) -> list:
    """The BatchNormalization layers inside a composite layer (empty for a plain one)."""
    inner = (
        layer._flatten_layers(include_self=False, recursive=True) if hasattr(layer, "_flatten_layers") else []
    )
    return [sub for sub in inner if type(sub).__name__ == "BatchNormalization"]


def _size(weight) -> int:
    n = 1
    for d in weight.shape:
        n *= int(d)
    return n
