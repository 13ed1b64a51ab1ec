"""Parameter-efficient fine-tuning (``--peft``): LoRA through Keras 3's ``enable_lora`` on a tiny KerasHub
ViT written offline, BitFit on its biases and norms (and on a BatchNorm CNN, in inference mode), the
merged weights in the saved model and its export, and LoRA refused on a CNN before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402

from tlstudio.cli import main  # noqa: E402
from tlstudio.core.backbone.classifier import build_classifier  # noqa: E402
from tlstudio.core.backbone.freezing import apply_freeze_plan  # noqa: E402
from tlstudio.core.backbone.peft import PeftError, apply_peft, merge_lora  # noqa: E402
from tlstudio.core.backbone.registry import build_backbone, resolve_backbone  # noqa: E402
from tlstudio.core.freeze_plan import FreezePlan  # noqa: E402
from tlstudio.core.settings import LORA_RANK  # noqa: E402

pytestmark = pytest.mark.slow
PROJECTIONS = ("query", "key", "value", "attention_output", "dense_1", "dense_2")


@pytest.fixture(scope="module")
def vit_preset(tmp_path_factory):
    """A ViT classifier preset at 32 px (3 blocks, width 32), saved by KerasHub's ``save_to_preset``."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=3, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    classifier = keras_hub.models.ViTImageClassifier(
        backbone=backbone, num_classes=3, preprocessor=preprocessor
    )
    folder = tmp_path_factory.mktemp("peft") / "tiny_vit"
    classifier.save_to_preset(str(folder))
    return folder


def _classifier(preset):
    spec = resolve_backbone(str(preset))
    model = build_classifier(build_backbone(spec, image_size=32), 3, 32, preprocessing="tf", class_token=True)
    return model, spec


def _size(variables) -> int:
    return sum(int(np.prod(v.shape)) for v in variables)


def _top_two(path: str) -> bool:
    return "transformer_block_2" in path or "transformer_block_3" in path


def test_each_mode_trains_only_its_variables_and_merging_gives_the_plain_model_back(vit_preset):
    model, _ = _classifier(vit_preset)
    head = _size(model.get_layer("predictions").weights)
    names = [w.path for w in model.weights]
    full = apply_freeze_plan(model, FreezePlan("top", 2)).model_trainable
    summary = apply_peft(model, "lora")
    projections = [
        layer
        for layer in model.get_layer("backbone")._flatten_layers()
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) and _top_two(layer.path)
    ]
    assert len(projections) == 2 * len(PROJECTIONS) == summary.layers
    adapters = _size(v for layer in projections for v in (layer.lora_kernel_a, layer.lora_kernel_b))
    # two blocks; EinsumDense: A (the kernel but its last axis × r), B (r × last); Dense: A (in×r), B (r×out)
    assert adapters == 2 * LORA_RANK * (3 * (32 * 2 + 16) + (2 * 16 + 32) + 2 * (32 + 64))
    assert summary.trainable == _size(model.trainable_weights) == adapters + head
    assert summary.full_fine_tune == full and summary.trainable < full
    trainable = {w.path for w in model.trainable_weights}
    assert all("lora_kernel" in p or p.startswith("predictions/") for p in trainable)
    assert merge_lora(model) == summary.layers
    assert [w.path for w in model.weights] == names  # no adapter left: checkpoints and WiSE-FT line up
    assert apply_freeze_plan(model, FreezePlan("top", 2)).model_trainable == full

    summary = apply_peft(model, "bitfit")
    trainable = {w.path for w in model.trainable_weights}
    backbone = {p for p in trainable if not p.startswith("predictions/")}
    assert backbone and all(p.rsplit("/", 1)[1] in ("bias", "gamma", "beta") for p in backbone)
    assert all(_top_two(p) or p.startswith("vit_encoder/ln/") for p in backbone)
    assert {"predictions/kernel", "predictions/bias"} <= trainable
    assert summary.trainable == _size(model.trainable_weights) < summary.full_fine_tune == full
    merge_lora(model)
    assert apply_freeze_plan(model, FreezePlan("top", 2)).model_trainable == full


def test_bitfit_trains_batchnorm_scales_in_inference_mode_and_lora_refuses_a_cnn():
    keras.utils.set_random_seed(1)
    backbone = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(8, 3, use_bias=False, name="block1_conv"),
            keras.layers.BatchNormalization(name="block1_bn"),
            keras.layers.ReLU(name="block1_relu"),
        ],
        name="backbone",
    )
    model = build_classifier(backbone, 2, 16)
    apply_freeze_plan(model, FreezePlan("none", train_batchnorm=True))
    with pytest.raises(PeftError, match="no Dense or EinsumDense"):
        apply_peft(model, "lora")
    apply_peft(model, "bitfit")
    bn = backbone.get_layer("block1_bn")
    before = {w.path: w.numpy().copy() for w in model.weights}
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    model.fit(x, np.arange(16) % 2, epochs=2, batch_size=8, verbose=0)
    changed = {w.path for w in model.weights if not np.array_equal(before[w.path], w.numpy())}
    assert changed == {bn.gamma.path, bn.beta.path, "predictions/kernel", "predictions/bias"}
    merge_lora(model)
    assert "call" not in vars(bn) and len(model.trainable_weights) == 5  # conv, γ, β, head


def test_a_lora_run_changes_only_adapters_and_head_and_its_export_agrees(vit_preset, tmp_path, capsys):
    import tensorflow as tf
    from factory import make_colour_dataset

    from tlstudio.core.backbone.kerashub import load_model_file
    from tlstudio.core.data.pipeline import load_for_model

    data = make_colour_dataset(tmp_path / "data", per_class=10)
    run = tmp_path / "run"
    args = ["train", str(data), "--backbone", str(vit_preset), "--out", str(run), "--batch-size", "8"]
    assert main([*args, "--peft", "lora", "--fine-tune-epochs", "2", "--no-augment", "--no-interpolate"]) == 0
    record = json.loads((run / "run.json").read_text())["peft"]
    assert record["mode"] == "lora" and record["rank"] == LORA_RANK and record["layers"] == 12
    assert 0 < record["trainable_params"] < record["full_fine_tune_params"]
    history = json.loads((run / "history.json").read_text())
    assert any(e["phase"] == "fine-tune" for e in history["epochs"])

    pretrained, _ = _classifier(vit_preset)
    start = {w.path: w.numpy() for w in pretrained.get_layer("backbone").weights}
    saved = load_model_file(run / "model.keras")
    after = {w.path: w.numpy() for w in saved.get_layer("backbone").weights}
    assert set(after) == set(start)  # a plain model: the adapters were merged, not saved beside it
    changed = {p for p in start if not np.array_equal(start[p], after[p])}
    assert changed, "the fine-tune phase's LoRA weights never reached the saved model"
    assert all(_top_two(p) and p.endswith("/kernel") and p.split("/")[-2] in PROJECTIONS for p in changed)
    for path in changed:  # each kernel moved by a low-rank update A·B
        delta = after[path] - start[path]
        assert np.linalg.matrix_rank(delta.reshape(-1, delta.shape[-1]), tol=1e-6) <= LORA_RANK

    images = np.stack([load_for_model(p, 32) for p in sorted(data.rglob("*.png"))[:6]]).astype(np.float32)
    expected = saved.predict(images, verbose=0)
    served = tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"]
    got = next(iter(served(tf.constant(images)).values())).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    capsys.readouterr()


def test_lora_on_a_convolutional_backbone_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    from factory import make_colour_dataset

    data = make_colour_dataset(tmp_path / "data", per_class=2)
    run = tmp_path / "run"
    code = main(["train", str(data), "--backbone", "MobileNetV2", "--out", str(run), "--peft", "lora"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not run.exists()
    assert (
        len(err.splitlines()) == 1 and "--peft lora needs a transformer backbone" in err and "bitfit" in err
    )
