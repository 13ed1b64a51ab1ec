"""DINOv2's linear4 probe features on a tiny KerasHub ViT (random weights, written by KerasHub's own
``save_to_preset``): the features are the blocks' class tokens, the run's model computes them, the
exported SavedModel agrees with it, and a backbone or run they do not suit is refused with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")  # KerasHub needs Python 3.11+: tlstudio[kerashub]

import keras  # noqa: E402

from tlstudio.cli import main  # noqa: E402
from tlstudio.core.backbone.block_tokens import BlockTokensBackbone  # noqa: E402
from tlstudio.core.settings import TrainSettings  # noqa: E402

HIDDEN = 16


def tiny_vit(layers: int = 5):
    keras.utils.set_random_seed(0)
    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3),
        patch_size=8,
        num_layers=layers,
        num_heads=2,
        hidden_dim=HIDDEN,
        mlp_dim=32,
        name="backbone",
    )


@pytest.fixture(scope="module")
def vit5_preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kerashub") / "tiny_vit5"
    tiny_vit().save_to_preset(str(folder))
    return folder


def test_linear4_is_the_last_four_blocks_class_tokens_and_the_mean_patch_token(tmp_path):
    hub = tiny_vit()
    images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    tapped = BlockTokensBackbone(hub)
    got = keras.ops.convert_to_numpy(tapped(images))
    assert got.shape == (3, 5 * HIDDEN)  # 4 class tokens + the mean patch token

    encoder = hub.get_layer("vit_encoder")  # the blocks' outputs, computed one by one here
    x = hub.get_layer("vit_patching_and_embedding")(images)
    outputs = []
    for block in encoder.encoder_layers:
        x = block(x)
        outputs.append(keras.ops.convert_to_numpy(encoder.layer_norm(x)))
    expected = [out[:, 0] for out in outputs[-4:]] + [outputs[-1][:, 1:].mean(axis=1)]
    np.testing.assert_allclose(got, np.concatenate(expected, axis=1), atol=1e-5)
    last = keras.ops.convert_to_numpy(hub(images))  # KerasHub's own forward pass: the last block
    np.testing.assert_allclose(got[:, 3 * HIDDEN : 4 * HIDDEN], last[:, 0], atol=1e-5)
    np.testing.assert_allclose(got[:, 4 * HIDDEN :], last[:, 1:].mean(axis=1), atol=1e-5)
    assert not np.allclose(got[:, :HIDDEN], got[:, 3 * HIDDEN : 4 * HIDDEN])  # other blocks' tokens

    inputs = keras.Input((32, 32, 3))  # saved inside a model and loaded back: the same features
    keras.Model(inputs, tapped(inputs)).save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), got, atol=1e-5)
    shallow = BlockTokensBackbone(tiny_vit(layers=2))  # fewer blocks than 4: every block
    assert shallow.output.shape == (None, 3 * HIDDEN)


@pytest.mark.slow
def test_a_probe_only_last4_run_trains_and_its_saved_model_agrees(vit5_preset, tmp_path, capsys):
    import tensorflow as tf
    from factory import make_colour_dataset

    from tlstudio.core.backbone.kerashub import load_model_file
    from tlstudio.core.data.pipeline import load_for_model

    data = make_colour_dataset(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", str(data), "--backbone", str(vit5_preset), "--out", str(run), "--batch-size", "8"]
    assert main([*args, "--probe-features", "last4", "--fine-tune-epochs", "0", "--no-augment"]) == 0
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["probe_features"]["used"] == "last4"
    assert json.loads((run / "settings.json").read_text())["probe_features"] == "last4"
    model = load_model_file(run / "model.keras")
    assert isinstance(model.get_layer("backbone"), BlockTokensBackbone)
    assert model.get_layer("predictions").kernel.shape == (5 * HIDDEN, 3)  # the head reads all five
    features = np.load(next((run / "features").rglob("train.npz")))["features"]
    assert features.shape[1] == 5 * HIDDEN  # the probe was fitted on the same vector
    capsys.readouterr()
    assert main(["export", str(run), "--format", "saved_model", "--json"]) == 0
    images = np.stack([load_for_model(p, 32) for p in sorted(data.rglob("*.png"))[:9]]).astype(np.float32)
    expected = model.predict(images, verbose=0)
    served = tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"]
    got = next(iter(served(tf.constant(images)).values())).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_last4_is_refused_for_a_cnn_and_with_fine_tuning_and_auto_is_last(vit5_preset, tmp_path, capsys):
    from factory import make_colour_dataset

    import tlstudio
    from tlstudio.core.backbone.block_tokens import choose_probe_features
    from tlstudio.core.backbone.registry import resolve_backbone

    data = make_colour_dataset(tmp_path / "data", per_class=2)
    for backbone, extra, why in (
        ("MobileNetV2", ["--fine-tune-epochs", "0"], "needs a KerasHub ViT backbone with a class token"),
        (str(vit5_preset), [], "probe-only runs so far: add --fine-tune-epochs 0"),
    ):
        run = tmp_path / "run"
        args = ["train", str(data), "--backbone", backbone, "--out", str(run), "--probe-features", "last4"]
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1
        assert not run.exists()  # refused before any work
    with pytest.raises(ValueError, match="needs a KerasHub ViT backbone"):  # the Python API: the same
        tlstudio.train(data, backbone="MobileNetV2", out=tmp_path / "api", probe_features="last4")
    assert not (tmp_path / "api").exists()
    spec = resolve_backbone(str(vit5_preset))
    used, reason = choose_probe_features(TrainSettings(backbone=str(vit5_preset)), spec)
    assert (used, reason.split(":")[0]) == ("last", "auto")
    with pytest.raises(ValueError, match="probe_features must be auto, last, last4"):
        TrainSettings(backbone="MobileNetV2", probe_features="linear4")  # type: ignore[arg-type]
