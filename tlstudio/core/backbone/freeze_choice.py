"""The freeze choice a tree view edits: which layers train, block multipliers, and the plan it makes.

Qt-free, so the rules live in one place and are tested without a window: BatchNorm stays frozen
unless ``train_batchnorm``; a block's box is on, off or partial over its non-BatchNorm layers; the
choice gives back the preset it was started from (``top:2`` stays ``top:2``) until a layer is
changed by hand, and only then becomes a ``custom`` plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tlstudio.core.backbone.freezing import layer_states
from tlstudio.core.backbone.layer_tree import BlockNode, LayerNode, LayerTree
from tlstudio.core.freeze_plan import FreezePlan


@dataclass
class FreezeChoice:
    """A tree and the user's current choice on it."""

    tree: LayerTree
    frozen: set[str] = field(default_factory=set)
    multipliers: dict[str, float] = field(default_factory=dict)
    preset: FreezePlan = field(default_factory=lambda: FreezePlan("all"))  # holds the BatchNorm switch

    @property
    def train_batchnorm(self) -> bool:
        """Whether BatchNorm layers may train (the preset's switch)."""
        return self.preset.train_batchnorm

    @classmethod
    def from_plan(cls, tree: LayerTree, plan: FreezePlan | None = None) -> FreezeChoice:
        """The choice a plan makes on ``tree`` (feature extraction when ``plan`` is None).

        Args:
            tree: the backbone's layer tree.
            plan: the plan to start from.

        Returns:
            The choice, remembering ``plan`` as its preset.
        """
        plan = plan or FreezePlan("all")
        choice = cls(tree, multipliers=dict(plan.block_lr), preset=plan)
        choice.use_preset(plan)
        return choice

    def use_preset(self, plan: FreezePlan) -> None:
        """Set every layer from a preset plan (keeping this choice's BatchNorm switch)."""
        self.preset = replace(plan, train_batchnorm=self.train_batchnorm, block_lr=())
        states = layer_states(self.tree, self.preset)
        self.frozen = {name for name, trainable in states.items() if not trainable}

    def set_batchnorm(self, on: bool) -> None:
        """Allow (or forbid) BatchNorm layers to train."""
        self.preset = replace(self.preset, train_batchnorm=on)

    def is_trainable(self, layer: LayerNode) -> bool:
        """Whether ``layer`` trains under this choice."""
        if layer.is_batchnorm and not self.train_batchnorm:
            return False
        return layer.name not in self.frozen

    def set_trainable(self, names: list[str], trainable: bool) -> None:
        """Freeze or unfreeze layers by name (BatchNorm stays frozen unless allowed)."""
        batchnorm = {x.name for x in self.tree.layers if x.is_batchnorm}
        for name in names:
            if trainable and (self.train_batchnorm or name not in batchnorm):
                self.frozen.discard(name)
            elif not trainable:
                self.frozen.add(name)

    def block_state(self, block: BlockNode) -> str:
        """``"on"``, ``"off"`` or ``"partial"`` over the block's layers that can train."""
        weighted = [x for x in block.layers if not (x.is_batchnorm and not self.train_batchnorm)]
        states = {self.is_trainable(x) for x in weighted or block.layers}
        return "on" if states == {True} else "off" if states == {False} else "partial"

    def trainable_params(self, block: BlockNode | None = None) -> int:
        """Trainable parameters of one block, or of the whole backbone."""
        layers = block.layers if block is not None else self.tree.layers
        return sum(x.params for x in layers if self.is_trainable(x))

    def totals(self) -> tuple[int, int]:
        """(trainable, frozen) parameter counts of the backbone."""
        trainable = self.trainable_params()
        return trainable, self.tree.total_params - trainable

    def plan(self) -> FreezePlan:
        """The choice as a plan: the preset while untouched, else ``all``/``none``/``custom``.

        Returns:
            A plan that gives back exactly this choice on this tree.
        """
        block_lr = tuple(sorted((k, v) for k, v in self.multipliers.items() if v != 1.0))
        bn = self.train_batchnorm
        preset_frozen = {n for n, on in layer_states(self.tree, self.preset).items() if not on}
        if self._effective(preset_frozen) == self._effective(self.frozen):
            return replace(self.preset, block_lr=block_lr)
        if self.frozen >= {x.name for x in self.tree.layers}:
            return FreezePlan("all", train_batchnorm=bn, block_lr=block_lr)
        if not self._effective(self.frozen):
            return FreezePlan("none", train_batchnorm=bn, block_lr=block_lr)
        return FreezePlan(train_batchnorm=bn, block_lr=block_lr).with_layers_frozen(self.tree, self.frozen)

    def _effective(self, frozen: set[str]) -> set[str]:
        """The frozen names that matter (BatchNorm is frozen anyway unless allowed)."""
        if self.train_batchnorm:
            return set(frozen)
        return set(frozen) - {x.name for x in self.tree.layers if x.is_batchnorm}
