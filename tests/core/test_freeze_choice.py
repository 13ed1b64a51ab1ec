"""The freeze choice the Layers tree edits, without Qt: BatchNorm rule, block states, totals, the plan."""

from __future__ import annotations

from tlstudio.core.backbone.freeze_choice import FreezeChoice
from tlstudio.core.backbone.freezing import layer_states
from tlstudio.core.backbone.layer_tree import BlockNode, LayerNode, LayerTree
from tlstudio.core.freeze_plan import FreezePlan


def layer(name: str, params: int, bn: bool = False) -> LayerNode:
    kind = "BatchNormalization" if bn else "Conv2D"
    return LayerNode(name, kind, "(None, 8, 8, 4)", params, params, True, bn)


def tree() -> LayerTree:
    blocks = [
        BlockNode("stem", [layer("conv0", 100), layer("bn0", 8, bn=True)]),
        BlockNode("block1", [layer("conv1", 200), layer("bn1", 8, bn=True)]),
        BlockNode("block2", [layer("conv2", 400), layer("bn2", 8, bn=True)]),
    ]
    return LayerTree("toy", blocks)


def test_a_preset_is_given_back_as_itself_until_a_layer_is_changed_by_hand():
    choice = FreezeChoice.from_plan(tree(), FreezePlan("top", 1, lr_decay=0.5))
    assert choice.plan() == FreezePlan("top", 1, lr_decay=0.5)  # not an explicit list of layers
    assert choice.frozen == {n for n, on in layer_states(choice.tree, FreezePlan("top", 1)).items() if not on}
    choice.set_trainable(["conv0"], True)
    plan = choice.plan()
    assert plan.preset == "custom" and "conv0" not in plan.frozen_layers
    choice.set_trainable(["conv0"], False)
    assert choice.plan().preset == "top"  # back to what the preset makes


def test_batchnorm_stays_frozen_unless_allowed_and_block_states_ignore_it():
    choice = FreezeChoice.from_plan(tree())
    assert choice.plan().preset == "all"
    choice.set_trainable(["conv2", "bn2"], True)
    assert "bn2" in choice.frozen and not choice.is_trainable(choice.tree.layers[-1])
    block2 = choice.tree.blocks[2]
    assert choice.block_state(block2) == "on"  # its BatchNorm does not make it partial
    assert choice.block_state(choice.tree.blocks[0]) == "off"
    choice.set_trainable(["conv1"], True)
    choice.set_trainable(["conv1"], False)
    assert choice.totals() == (400, 100 + 8 + 200 + 8 + 400 + 8 - 400)
    choice.set_batchnorm(True)
    choice.set_trainable(["bn2"], True)
    assert choice.is_trainable(choice.tree.layers[-1]) and choice.trainable_params(block2) == 408


def test_everything_trainable_is_none_and_multipliers_travel_with_the_plan():
    choice = FreezeChoice.from_plan(tree())
    choice.set_trainable([x.name for x in choice.tree.layers], True)
    choice.multipliers["block2"] = 0.5
    choice.multipliers["stem"] = 1.0  # the neutral value is not written
    plan = choice.plan()
    assert plan.preset == "none" and plan.block_lr == (("block2", 0.5),)
    again = FreezeChoice.from_plan(choice.tree, plan)
    assert again.plan() == plan and again.multipliers == {"block2": 0.5}


def test_a_custom_plan_gives_back_the_same_layers():
    plan = FreezePlan("custom", frozen_layers=frozenset({"conv0", "conv1"}))
    choice = FreezeChoice.from_plan(tree(), plan)
    assert choice.plan() == plan
    assert {x.name for x in choice.tree.layers if not choice.is_trainable(x)} == {
        "conv0",
        "conv1",
        "bn0",
        "bn1",
        "bn2",
    }
