"""SavedModel folders and TF Hub handles as fine-tunable Keras 3 backbones."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlstudio.core.backbone.classifier import build_classifier
from tlstudio.core.backbone.freezing import apply_freeze_plan
from tlstudio.core.backbone.registry import BackboneError, build_backbone, resolve_backbone
from tlstudio.core.backbone.savedmodel import SavedModelLayer
from tlstudio.core.freeze_plan import FreezePlan


@pytest.fixture(scope="module")
def keras_savedmodel(tmp_path_factory):
    """A Keras model exported as a SavedModel (``serve`` endpoint), with BatchNorm."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path_factory.mktemp("sm") / "keras_export"
    keras.Model(inputs, outputs).export(str(path), verbose=False)
    return path


class HubStyle(tf.Module):
    """Like a TF Hub image feature vector: ``__call__`` on [0, 1] images, variables with ':0' names."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal((3, 5), seed=(1, 2)), name="dense/kernel")

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        return tf.reduce_mean(tf.nn.relu(tf.tensordot(images, self.kernel, 1)), axis=[1, 2])


@pytest.fixture(scope="module")
def hub_savedmodel(tmp_path_factory):
    path = tmp_path_factory.mktemp("sm") / "hub_style"
    tf.saved_model.save(HubStyle(), str(path))
    return path


def data(n=32, size=16):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    return x, (x[..., 0].mean((1, 2)) > x[..., 2].mean((1, 2))).astype(int)


@pytest.mark.parametrize("which", ["keras_savedmodel", "hub_savedmodel"])
def test_savedmodel_backbone_fine_tunes_with_adam(which, request):
    path = request.getfixturevalue(which)
    spec = resolve_backbone(str(path))
    assert spec.kind == "savedmodel" and spec.preprocessing == "unit"
    backbone = build_backbone(spec, image_size=16)
    model = build_classifier(backbone, 2, 16, preprocessing="unit")
    apply_freeze_plan(model, FreezePlan("none"))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    layer = backbone.get_layer("savedmodel")
    assert layer.trainable_weights and all(":" not in w.path for w in layer.weights)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for weight, old in zip(layer.trainable_weights, before, strict=True):
        assert not np.allclose(weight.numpy(), old)
    # the restored functions read the very variables the optimizer updated
    probe = x[:2] / 255.0
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(probe)), np.asarray(layer._fn(tf.constant(probe))), atol=1e-6
    )


def test_frozen_savedmodel_backbone_does_not_change(keras_savedmodel):
    backbone = build_backbone(resolve_backbone(str(keras_savedmodel)), image_size=16)
    model = build_classifier(backbone, 2, 16)
    summary = apply_freeze_plan(model, FreezePlan("all"))
    assert summary.backbone_trainable == 0
    model.compile("adam", "sparse_categorical_crossentropy")
    before = [w.numpy().copy() for w in backbone.weights]
    model.fit(*data(), epochs=1, verbose=0)
    for weight, old in zip(backbone.weights, before, strict=True):
        np.testing.assert_array_equal(weight.numpy(), old)


def test_classifier_with_savedmodel_backbone_exports_and_reloads(hub_savedmodel, tmp_path):
    from tlstudio.core.deploy.export import export_model

    model = build_classifier(
        build_backbone(resolve_backbone(str(hub_savedmodel)), image_size=16), 2, 16, preprocessing="unit"
    )
    result = export_model(model, tmp_path, labels=["a", "b"], image_size=16)
    assert result.max_abs_difference <= 1e-5
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    x, _ = data(4)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert isinstance(reloaded.get_layer("backbone").get_layer("savedmodel"), SavedModelLayer)


def test_hub_handle_offline_gives_a_clear_message(monkeypatch):
    import tensorflow_hub as hub

    def offline(handle):
        raise OSError("no network")

    monkeypatch.setattr(hub, "resolve", offline)
    spec = resolve_backbone("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5")
    assert spec.kind == "savedmodel"
    with pytest.raises(BackboneError, match=r"could not fetch the hub model.*pass the folder as --backbone"):
        build_backbone(spec, image_size=32)


def test_without_tf_hub_a_hub_handle_says_which_extra_to_install(monkeypatch):
    import builtins
    import importlib.util

    handle = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5"
    real_find_spec, real_import = importlib.util.find_spec, builtins.__import__
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow_hub" else real_find_spec(name, *a),
    )
    with pytest.raises(BackboneError, match=r"not installed: pip install 'tlstudio\[hub\]'"):
        build_backbone(resolve_backbone(handle), image_size=32)
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)

    def broken(name, *args, **kwargs):  # installed, but its import fails (pkg_resources gone)
        if name == "tensorflow_hub":
            raise ModuleNotFoundError("No module named 'pkg_resources'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(BackboneError, match=r"does not import here .*pkg_resources.*tlstudio\[hub\]"):
        build_backbone(resolve_backbone(handle), image_size=32)
