"""The backbone as a tree of blocks and layers: pure data, ready for a tree view.

Blocks come from the naming conventions of Keras Applications (ResNet ``conv4_block3_*``,
EfficientNet ``block6a_*``, MobileNet ``block_13_*`` / ``expanded_conv_3_*``, Inception
``mixed5``, ConvNeXt ``stage_2_block_1``, VGG/Xception ``block4_*``). Layers without such a name
join the block being built. A model that follows none of these conventions (a user's own) is cut
into blocks that end at each merge (Add, Concatenate) or pooling layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Layer names that open (or continue) a block; group 1 is the block's name.
_BLOCK_PATTERNS = [
    re.compile(p)
    for p in (
        r"^(conv\d+_block\d+)_",  # ResNet, DenseNet
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


def leaf_layers(model) -> list:
    """The model's layers in order, with nested models (a user's model wrapping a Keras
    Application, say) replaced by their own layers; input layers left out."""
    out = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers") and layer.layers:
            out.extend(leaf_layers(layer))
        else:
            out.append(layer)
    return out


def build_layer_tree(backbone) -> LayerTree:
    """Group a Keras model's layers into blocks (see the module docstring)."""
    layers = leaf_layers(backbone)
    names = _named_blocks(layers)
    if set(names) <= {"stem", "top"}:
        names = _structural_blocks(layers)
    blocks: list[BlockNode] = []
    for layer, block_name in zip(layers, names, strict=True):
        if not blocks or blocks[-1].name != block_name:
            blocks.append(BlockNode(block_name))
        blocks[-1].layers.append(_layer_node(layer))
    return LayerTree(backbone.name, _merge_repeated(blocks))


def _named_blocks(layers) -> list[str]:
    """Block name per layer from naming conventions.

    Unnamed layers join the current block; in models with 'mixedN'-style block ends (Inception),
    they join the next named block instead, since there a block's branches come before its name.
    """
    end_style = any(_BLOCK_END.match(layer.name) for layer in layers)
    names: list[str] = []
    pending: list[int] = []
    current = "stem"
    for i, layer in enumerate(layers):
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


def _layer_node(layer) -> LayerNode:
    try:
        shape = tuple(layer.output.shape)[1:]
        output_shape = "×".join("?" if d is None else str(d) for d in shape)
    except (AttributeError, ValueError):
        output_shape = "?"
    params = int(sum(_size(w) for w in layer.weights))
    trainable_params = int(sum(_size(w) for w in layer.trainable_weights))
    return LayerNode(
        name=layer.name,
        type=type(layer).__name__,
        output_shape=output_shape,
        params=params,
        trainable_params=trainable_params,
        trainable=bool(layer.trainable),
        is_batchnorm=type(layer).__name__ == "BatchNormalization",
    )


def _size(weight) -> int:
    n = 1
    for d in weight.shape:
        n *= int(d)
    return n
