"""SavedModel export: raw-pixel signatures, reload with plain TensorFlow, atomic writes."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlstudio.core.backbone.classifier import build_classifier
from tlstudio.core.backbone.registry import build_backbone, resolve_backbone
from tlstudio.core.deploy.export import ExportError, export_model
from tlstudio.core.results.evaluation import load_exported

LABELS = ["cat", "dög", "emu"]


@pytest.fixture(scope="module")
def classifier():
    """A small CNN with BatchNorm behind the caffe-style preprocessing (the trickiest mode)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv2")(x)
    return build_classifier(keras.Model(inputs, x, name="backbone"), 3, 32, preprocessing="caffe")


def test_a_keras_application_exports_too(tmp_path):
    backbone = build_backbone(resolve_backbone("MobileNetV3Small"), weights="none", image_size=32)
    model = build_classifier(backbone, 2, 32)
    result = export_model(model, tmp_path, labels=["a", "b"], image_size=32)
    assert result.max_abs_difference <= 1e-4


def pixels(n=5, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_export_round_trip_with_raw_pixels(classifier, tmp_path):
    result = export_model(classifier, tmp_path / "out", labels=LABELS, image_size=32, metadata={"note": "x"})
    assert result.max_abs_difference <= 1e-4
    out = tmp_path / "out"
    assert (out / "labels.txt").read_text(encoding="utf-8").splitlines() == LABELS
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["classes"] == LABELS and meta["image_size"] == 32 and meta["note"] == "x"

    loaded = tf.saved_model.load(str(out / "saved_model"))
    x = pixels()
    expected = classifier.predict(x.astype("float32"), verbose=0)
    got = loaded.signatures["serving_default"](images=tf.constant(x, tf.float32))
    np.testing.assert_allclose(got["output_0"].numpy(), expected, atol=1e-5)
    got8 = loaded.signatures["serving_uint8"](images=tf.constant(x))
    np.testing.assert_allclose(got8["output_0"].numpy(), expected, atol=1e-5)
    for array in (x, x.astype("float32"), x.astype("float64")):  # what people pass to `serve`
        np.testing.assert_allclose(loaded.serve(array).numpy(), expected, atol=1e-5)
    named = loaded.signatures["classify"](images=tf.constant(x, tf.float32))
    assert [s.decode() for s in named["label"].numpy()] == [LABELS[i] for i in expected.argmax(1)]
    np.testing.assert_array_equal(named["class_index"].numpy(), expected.argmax(1))


def test_export_resizes_other_sizes_inside(classifier, tmp_path):
    export_model(classifier, tmp_path, labels=LABELS, image_size=32)
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    big = pixels(2, 64)
    out = loaded.serve(tf.constant(big, tf.float32)).numpy()
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_file_loads_with_plain_keras_in_safe_mode(classifier, tmp_path):
    export_model(classifier, tmp_path, labels=LABELS, image_size=32)
    reloaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    x = pixels(3).astype("float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), classifier.predict(x, verbose=0), atol=1e-5)
    assert type(reloaded).__name__ == "Functional"


def test_failed_verification_writes_nothing(classifier, tmp_path):
    with pytest.raises(ExportError, match="differs"):
        export_model(classifier, tmp_path, labels=LABELS, image_size=32, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_re_export_replaces_the_old_one_whole(classifier, tmp_path):
    export_model(classifier, tmp_path, labels=LABELS, image_size=32)
    (tmp_path / "saved_model" / "stale.txt").write_text("old")
    export_model(classifier, tmp_path, labels=["a", "b", "c"], image_size=32)
    assert not (tmp_path / "saved_model" / "stale.txt").exists()
    assert load_exported(tmp_path).labels == ["a", "b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "labels.txt",
        "metadata.json",
        "model.keras",
        "saved_model",
    ]


def test_load_exported_is_self_contained(classifier, tmp_path):
    export_model(classifier, tmp_path / "run", labels=LABELS, image_size=32)
    moved = tmp_path / "elsewhere"
    (tmp_path / "run" / "saved_model").rename(moved)
    model = load_exported(moved)
    assert model.labels == LABELS and model.image_size == 32
    assert model.predict(pixels(2)).shape == (2, 3)


def test_a_set_cut_short_while_being_replaced_is_refused_and_leftovers_cleaned(classifier, tmp_path):
    import shutil

    export_model(classifier, tmp_path, labels=LABELS, image_size=32)
    saved_first = tmp_path / "first_saved_model"
    shutil.copytree(tmp_path / "saved_model", saved_first)
    export_model(classifier, tmp_path, labels=["a", "b", "c"], image_size=32)
    # a kill between the renames: the old saved_model with the new metadata.json
    shutil.rmtree(tmp_path / "saved_model")
    saved_first.rename(tmp_path / "saved_model")
    with pytest.raises(ValueError, match="incomplete"):
        load_exported(tmp_path)
    (tmp_path / ".export-999999999-x").mkdir()
    (tmp_path / ".old-saved_model-999999999").mkdir()
    export_model(classifier, tmp_path, labels=LABELS, image_size=32)
    assert load_exported(tmp_path).labels == LABELS
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
