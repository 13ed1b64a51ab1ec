"""The backbone registry, preprocessing per family, weights, and user model files."""

from __future__ import annotations

import importlib
import json

import keras
import numpy as np
import pytest

from tlstudio.core.backbone.preprocessing import preprocessing_layers
from tlstudio.core.backbone.registry import (
    BackboneError,
    build_backbone,
    keras_application_functions,
    list_backbones,
    resolve_backbone,
)


def test_registry_is_every_keras_application_and_the_offline_backbone():
    from tlstudio.core.backbone import efficientnet_lite

    names = {s.name for s in list_backbones() if s.kind == "keras"}
    assert names == set(keras_application_functions())
    assert {"ResNet50", "MobileNetV3Small", "EfficientNetB0", "ConvNeXtTiny", "DenseNet121"} <= names
    others = {s.name for s in list_backbones() if s.kind != "keras"}
    assert others == ({efficientnet_lite.NAME} if efficientnet_lite.available() else set())
    table_file = importlib.resources.files("tlstudio.core.backbone") / "backbone_table.json"
    table = json.loads(table_file.read_text())
    assert set(table) == names, "regenerate with tools/make_backbone_table.py"
    assert all(s.params and s.params > 0 for s in list_backbones())


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("EfficientNetB0", "none"),
        ("EfficientNetV2B0", "none"),
        ("MobileNetV3Small", "none"),
        ("ConvNeXtTiny", "none"),
        ("ResNet50", "caffe"),
        ("VGG16", "caffe"),
        ("MobileNetV2", "tf"),
        ("MobileNet", "tf"),
        ("InceptionV3", "tf"),
        ("Xception", "tf"),
        ("ResNet50V2", "tf"),
        ("NASNetMobile", "tf"),
        ("InceptionResNetV2", "tf"),
        ("DenseNet121", "torch"),
    ],
)
def test_preprocessing_per_family(name, mode):
    assert resolve_backbone(name).preprocessing == mode


def test_every_family_has_a_known_preprocessing():
    modes = {s.family: s.preprocessing for s in list_backbones()}
    assert set(modes.values()) <= {"none", "tf", "caffe", "torch"}
    assert len(modes) >= 14


@pytest.mark.parametrize(
    ("module", "mode"), [("resnet", "caffe"), ("mobilenet_v2", "tf"), ("densenet", "torch")]
)
def test_preprocessing_layers_match_keras_preprocess_input(module, mode):
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    x = keras.ops.convert_to_tensor(pixels)
    for layer in preprocessing_layers(mode):
        x = layer(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(x), expected, rtol=1e-5, atol=1e-4)


def test_published_imagenet_accuracy_is_attached():
    specs = {s.name: s for s in list_backbones()}
    assert specs["ResNet50"].imagenet_top1 == pytest.approx(0.749)
    assert specs["NASNetLarge"].imagenet_top1 == pytest.approx(0.825)
    assert specs["ConvNeXtTiny"].imagenet_top1 is None  # not in the table Keras publishes


def test_sizes_come_from_keras():
    assert resolve_backbone("InceptionV3").min_size == 75
    assert resolve_backbone("Xception").min_size == 71
    assert resolve_backbone("EfficientNetB3").default_size == 300
    assert resolve_backbone("ResNet50").default_size == 224


def test_build_a_registry_backbone_without_weights():
    spec = resolve_backbone("mobilenetv3small")  # names are case-insensitive
    backbone = build_backbone(spec, weights="none", image_size=32)
    assert backbone.name == "backbone"
    assert tuple(backbone.output.shape)[1:3] == (1, 1)
    assert backbone.count_params() == spec.params


def test_too_small_input_is_refused():
    with pytest.raises(BackboneError, match="at least 75"):
        build_backbone(resolve_backbone("InceptionV3"), weights="none", image_size=32)


def test_offline_imagenet_weights_give_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/weights_no_top.h5: no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(BackboneError) as err:
        build_backbone(resolve_backbone("MobileNetV3Small"), weights="imagenet", image_size=32)
    message = str(err.value)
    assert str(tmp_path / "models") in message
    assert "weights_no_top.h5" in message
    assert "no network" in message and "tlstudio weights MobileNetV3Small" in message


def test_weights_from_a_local_file(tmp_path):
    spec = resolve_backbone("MobileNetV3Small")
    first = build_backbone(spec, weights="none", image_size=32)
    path = tmp_path / "w.weights.h5"
    keras.Model(first.inputs, first.outputs).save_weights(path)
    second = build_backbone(spec, weights=str(path), image_size=32)
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unknown_backbone_suggests_names():
    with pytest.raises(BackboneError, match=r"Did you mean.*ResNet50"):
        resolve_backbone("resnet5")


def test_user_model_is_cut_at_its_pooling_layer(tiny_backbone_file):
    spec = resolve_backbone(str(tiny_backbone_file))
    assert spec.kind == "file"
    backbone = build_backbone(spec)
    assert backbone.output.shape[-1] == 16
    assert backbone.layers[-1].name == "features"
    cut = build_backbone(spec, cut_at="pool_b")
    assert tuple(cut.output.shape)[1:] == (8, 8, 16)


def test_user_model_with_code_is_refused_in_safe_mode(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(BackboneError, match="safe mode"):
        build_backbone(resolve_backbone(str(path)))


def test_hub_handles_are_told_apart_from_names_and_files_without_keras():
    from tlstudio.core.backbone.sources import is_hub_handle

    assert is_hub_handle("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5")
    assert is_hub_handle("https://www.kaggle.com/models/google/mobilenet-v3/TensorFlow2/small-075-224/1")
    assert not is_hub_handle("MobileNetV3Small") and not is_hub_handle("/models/mine.keras")
    spec = resolve_backbone("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5")
    assert spec.kind == "savedmodel" and spec.family == "TF Hub"


def test_a_model_file_says_its_own_input_size_and_the_sample_cnn_is_named(tmp_path, tiny_backbone_file):
    import keras

    from tlstudio.core.data.sample import demo_backbone

    assert resolve_backbone(str(tiny_backbone_file)).default_size == 32  # read from the file, not 224
    sample = resolve_backbone(str(demo_backbone(tmp_path / "sample")))
    assert sample.default_size == 32 and "sample CNN" in sample.family
    inputs = keras.Input((48, 48, 3))
    legacy = tmp_path / "legacy.h5"
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(legacy)
    assert resolve_backbone(str(legacy)).default_size == 48
    any_size = tmp_path / "any.keras"
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(any_size)
    assert resolve_backbone(str(any_size)).family == "user model"  # no size to read: the usual default
    assert resolve_backbone(str(any_size)).default_size == 224


def test_a_truncated_or_foreign_model_file_is_refused_with_what_it_is(tmp_path, tiny_backbone_file):
    from tlstudio.core.backbone.registry import BackboneError

    truncated = tmp_path / "cut.keras"
    truncated.write_bytes(tiny_backbone_file.read_bytes()[:2000])
    text = tmp_path / "notes.h5"
    text.write_text("not weights")
    for path, words in ((truncated, "not a readable .keras file"), (text, "not an HDF5 Keras model file")):
        with pytest.raises(BackboneError, match=words):  # not Keras' "File not found: filepath=…"
            resolve_backbone(str(path))
