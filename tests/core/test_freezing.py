"""Layer tree grouping, freeze plans and their counts, BatchNorm, recompiling, discriminative rates."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlstudio.core.backbone.classifier import build_classifier
from tlstudio.core.backbone.freezing import (
    apply_freeze_plan,
    layer_lr_multipliers,
    layer_states,
    summarize,
    variable_multipliers,
)
from tlstudio.core.backbone.layer_tree import build_layer_tree
from tlstudio.core.backbone.registry import build_backbone, resolve_backbone
from tlstudio.core.freeze_plan import FreezePlan


def app(name: str, size: int = 32):
    keras.backend.clear_session()
    return build_backbone(resolve_backbone(name), weights="none", image_size=size)


@pytest.fixture(scope="module")
def mobilenet():
    return app("MobileNetV3Small")


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("ResNet50", 32, ["stem", "pool1", "conv2_block1", "conv2_block2", "conv2_block3", "conv3_block1"]),
        ("EfficientNetB0", 32, ["stem", "block1a", "block2a", "block2b", "block3a"]),
        ("MobileNetV2", 32, ["stem", "expanded_conv", "block_1", "block_2"]),
        ("MobileNetV3Small", 32, ["stem", "expanded_conv", "expanded_conv_1", "expanded_conv_2"]),
        ("InceptionV3", 75, ["mixed0", "mixed1", "mixed2", "mixed3"]),
        ("VGG16", 32, ["block1", "block2", "block3", "block4", "block5"]),
    ],
)
def test_blocks_follow_the_families_names(name, size, expected):
    tree = build_layer_tree(app(name, size))
    assert [b.name for b in tree.blocks][: len(expected)] == expected
    assert sum(len(b.layers) for b in tree.blocks) == len(tree.layers)


def test_efficientnet_ends_with_top_and_resnet_block_contents():
    tree = build_layer_tree(app("EfficientNetB0"))
    assert tree.blocks[-1].name == "top"
    assert tree.blocks[-2].name == "block7a"
    resnet = build_layer_tree(app("ResNet50"))
    names = [layer.name for layer in resnet.block("conv4_block3").layers]
    assert names[0] == "conv4_block3_1_conv" and names[-1] == "conv4_block3_out"


def test_layer_nodes_carry_type_shape_params_and_batchnorm(mobilenet):
    tree = build_layer_tree(mobilenet)
    assert tree.total_params == mobilenet.count_params()
    bn = [layer for layer in tree.layers if layer.is_batchnorm]
    assert bn and all(layer.type == "BatchNormalization" for layer in bn)
    conv = next(layer for layer in tree.layers if layer.type == "Conv2D")
    assert conv.output_shape.count("×") == 2 and conv.params > 0


def test_user_model_without_known_names_is_cut_at_pools(tiny_backbone_file):
    tree = build_layer_tree(build_backbone(resolve_backbone(str(tiny_backbone_file))))
    assert [b.name for b in tree.blocks] == ["block_1", "block_2", "block_3"]
    assert tree.blocks[0].layers[-1].name == "pool_a"


def _bn_params(tree, blocks=None):
    return sum(
        layer.params
        for b in tree.blocks
        if blocks is None or b.name in blocks
        for layer in b.layers
        if layer.is_batchnorm
    )


def test_freeze_all_none_top_first_custom_counts(mobilenet):
    model = build_classifier(mobilenet, 3, 32)
    tree = build_layer_tree(mobilenet)
    head = sum(int(np.prod(w.shape)) for w in model.get_layer("predictions").weights)

    s = apply_freeze_plan(model, FreezePlan("all"))
    assert s.backbone_trainable == 0 and s.backbone_frozen == tree.total_params
    assert s.model_trainable == head

    s = apply_freeze_plan(model, FreezePlan("none"))
    bn_total = sum(lyr.params for lyr in tree.layers if lyr.is_batchnorm)
    assert s.backbone_trainable == tree.total_params - bn_total

    s = apply_freeze_plan(model, FreezePlan("top", 2))
    top = [b.name for b in tree.blocks[-2:]]
    top_params = sum(tree.block(n).params for n in top)
    assert s.backbone_trainable == top_params - _bn_params(tree, top)

    s = apply_freeze_plan(model, FreezePlan.parse("first:50%"))
    assert s.backbone_frozen >= tree.total_params * 0.5
    first_trainable = next(
        i for i, lyr in enumerate(tree.layers) if layer_states(tree, FreezePlan("first", 50))[lyr.name]
    )
    assert sum(lyr.params for lyr in tree.layers[:first_trainable]) >= tree.total_params * 0.5

    frozen = {lyr.name for lyr in tree.block("expanded_conv").layers}
    plan = FreezePlan("none").with_layers_frozen(tree, frozen)
    s = apply_freeze_plan(model, plan)
    assert s.backbone_trainable == tree.total_params - bn_total - (
        tree.block("expanded_conv").params - _bn_params(tree, ["expanded_conv"])
    )
    assert build_layer_tree(mobilenet).block("expanded_conv").state == "frozen"
    assert build_layer_tree(mobilenet).block("stem").state in ("trainable", "partial")


def test_batchnorm_can_be_allowed_to_train(mobilenet):
    model = build_classifier(mobilenet, 3, 32)
    s = apply_freeze_plan(model, FreezePlan("none", train_batchnorm=True))
    assert s.backbone_trainable == sum(int(np.prod(w.shape)) for w in mobilenet.trainable_weights)
    assert s.backbone_trainable > apply_freeze_plan(model, FreezePlan("none")).backbone_trainable


def test_parse_and_validate_plans():
    assert FreezePlan.parse("top:3") == FreezePlan("top", 3)
    assert FreezePlan.parse("first:70%") == FreezePlan("first", 70)
    for bad in ("half", "top:", "first:120%"):
        with pytest.raises(ValueError):
            FreezePlan.parse(bad)
    with pytest.raises(KeyError):
        FreezePlan().with_layers_frozen(build_layer_tree(app("MobileNetV3Small")), {"nope"})


def _bn_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.MaxPooling2D(1, name="pool")(x)
    x = keras.layers.Conv2D(4, 3, name="conv2")(x)
    return keras.Model(inputs, x, name="backbone")


@pytest.mark.parametrize("train_batchnorm", [False, True])
def test_batchnorm_statistics_stay_fixed_unless_the_plan_trains_them(train_batchnorm):
    model = build_classifier(_bn_model(), 2, 8)
    apply_freeze_plan(model, FreezePlan("none", train_batchnorm=train_batchnorm))
    model.compile("adam", "sparse_categorical_crossentropy")
    bn = model.get_layer("backbone").get_layer("bn")
    before = bn.moving_mean.numpy().copy()
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    model.fit(x, np.arange(16) % 2, epochs=1, batch_size=8, verbose=0)
    changed = not np.allclose(bn.moving_mean.numpy(), before)
    assert changed is train_batchnorm
    assert model.get_layer("backbone").get_layer("conv").trainable  # the rest of the backbone trained


def test_recompiling_after_a_plan_change_trains_the_new_variables():
    model = build_classifier(_bn_model(), 2, 8)
    x = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 2
    apply_freeze_plan(model, FreezePlan("all"))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    conv = model.get_layer("backbone").get_layer("conv")
    before = conv.kernel.numpy().copy()
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(conv.kernel.numpy(), before)
    apply_freeze_plan(model, FreezePlan("none"))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.allclose(conv.kernel.numpy(), before)


def test_discriminative_rates_scale_the_adam_step_per_group():
    model = build_classifier(_bn_model(), 2, 8, preprocessing="tf")
    plan = FreezePlan("none", block_lr=(("block_1", 0.1),))
    tree = build_layer_tree(model.get_layer("backbone"))
    per_layer = layer_lr_multipliers(tree, plan)
    assert per_layer["conv"] == 0.1 and per_layer["conv2"] == 1.0
    apply_freeze_plan(model, plan)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    multipliers = variable_multipliers(model, plan)
    counts = model.set_lr_multipliers(lambda v: multipliers.get(id(v), 1.0))
    assert counts[0.1] == 2  # conv kernel and bias
    slow = model.get_layer("backbone").get_layer("conv").kernel
    fast = model.get_layer("backbone").get_layer("conv2").kernel
    before = {id(v): v.numpy().copy() for v in (slow, fast)}
    x = np.random.default_rng(1).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    model.fit(x, np.arange(16) % 2, epochs=1, batch_size=16, verbose=0)
    step_slow = np.abs(slow.numpy() - before[id(slow)]).max()
    step_fast = np.abs(fast.numpy() - before[id(fast)]).max()
    # Adam's first step moves each weight by about its learning rate
    assert step_fast == pytest.approx(1e-2, rel=0.05)
    assert step_slow == pytest.approx(1e-3, rel=0.05)


def test_layerwise_decay_lowers_rates_going_down(mobilenet):
    tree = build_layer_tree(mobilenet)
    plan = FreezePlan("top", 3, lr_decay=0.5)
    per_layer = layer_lr_multipliers(tree, plan)
    top3 = tree.blocks[-3:]
    assert [per_layer[b.layers[0].name] for b in top3] == [0.125, 0.25, 0.5]
    assert summarize(build_classifier(mobilenet, 2, 32)).model_trainable > 0


def test_nested_application_inside_a_user_model_is_expanded(tmp_path):
    inner = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(inner(inputs))
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    path = tmp_path / "wrapped.keras"
    keras.Model(inputs, outputs).save(path)
    backbone = build_backbone(resolve_backbone(str(path)))
    tree = build_layer_tree(backbone)
    assert [b.name for b in tree.blocks][:3] == ["stem", "expanded_conv", "expanded_conv_1"]
    model = build_classifier(backbone, 2, 32)
    s = apply_freeze_plan(model, FreezePlan("top", 1))
    top_block = tree.blocks[-1]
    assert 0 < s.backbone_trainable <= top_block.params
    assert s.backbone_trainable == top_block.params - _bn_params(tree, [top_block.name])
