"""A freeze plan as the user states it: pure data, part of the settings (no Keras needed).

Presets: ``all`` (feature extraction: the whole backbone frozen), ``none`` (fine-tune everything),
``first:P%`` (freeze the first P percent of the backbone's parameters), ``top:N`` (train only the
top N blocks), and ``custom`` (an explicit set of frozen layers, as a tree view edits it).
BatchNorm layers stay frozen unless the plan says ``train_batchnorm``. ``backbone/freezing.py``
applies a plan to a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tlstudio.core.backbone.layer_tree import LayerTree

PRESETS = ("all", "none", "first", "top", "custom")


@dataclass(frozen=True)
class FreezePlan:
    """Which backbone layers are trainable, and their learning-rate multipliers."""

    preset: str = "all"
    value: float = 0.0  # percent for "first", number of blocks for "top"
    frozen_layers: frozenset[str] = field(default_factory=frozenset)  # for "custom"
    train_batchnorm: bool = False
    block_lr: tuple[tuple[str, float], ...] = ()  # explicit (block, multiplier) pairs
    lr_decay: float | None = None  # multiplier per block going down from the top trainable block

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown freeze preset '{self.preset}' (choose from {', '.join(PRESETS)})")
        if self.preset == "first" and not 0 <= self.value <= 100:
            raise ValueError("first:P% needs P between 0 and 100")
        if self.preset == "top" and self.value < 0:
            raise ValueError("top:N needs N >= 0")
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise ValueError("lr_decay must be in (0, 1]")

    @classmethod
    def parse(cls, text: str) -> FreezePlan:
        """From the CLI form: ``all``, ``none``, ``top:2``, ``first:70%`` (``first:70`` too)."""
        text = text.strip().lower()
        if text in ("all", "none"):
            return cls(text)
        found = re.fullmatch(r"(top|first):(\d+(?:\.\d+)?)%?", text)
        if not found:
            raise ValueError(f"cannot read freeze plan '{text}': use all, none, top:N or first:P%")
        return cls(found.group(1), float(found.group(2)))

    def describe(self) -> str:
        """A short human description."""
        return {
            "all": "backbone frozen (feature extraction)",
            "none": "whole backbone trainable",
            "first": f"first {self.value:g}% of the backbone frozen",
            "top": f"top {int(self.value)} block(s) trainable",
            "custom": f"{len(self.frozen_layers)} layer(s) frozen by hand",
        }[self.preset]

    def with_layers_frozen(self, tree: LayerTree, frozen: set[str]) -> FreezePlan:
        """A custom plan freezing exactly ``frozen`` (layer names of ``tree``)."""
        unknown = frozen - {layer.name for layer in tree.layers}
        if unknown:
            raise KeyError(f"no such layer(s): {', '.join(sorted(unknown))}")
        return replace(self, preset="custom", frozen_layers=frozenset(frozen))
