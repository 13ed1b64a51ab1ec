"""Grad-CAM finds the evidence where a hand-built model is known to look."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlstudio.core.backbone.classifier import build_classifier
from tlstudio.core.backbone.registry import build_backbone, resolve_backbone
from tlstudio.core.results.gradcam import GradCam, GradCamError, last_feature_map_layer, overlay


def red_detector() -> keras.Model:
    """Backbone: a 1×1 conv whose only channel is the red minus the green value; the head's class 0
    weight on it is positive, so the evidence for class 0 is exactly the red area."""
    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="redness")
    x = conv(inputs)
    backbone = keras.Model(inputs, x, name="backbone")
    conv.set_weights([np.array([1.0, -1.0, 0.0], np.float32).reshape(1, 1, 3, 1), np.zeros(1, np.float32)])
    model = build_classifier(backbone, 2, 32, preprocessing="unit")
    model.get_layer("predictions").set_weights([np.array([[4.0, -4.0]], np.float32), np.zeros(2, np.float32)])
    return model


def test_the_heat_map_lies_on_the_red_patch(tmp_path):
    model = red_detector()
    image = np.full((32, 32, 3), 40, np.uint8)
    image[20:28, 4:12] = (250, 10, 10)
    cam = GradCam(model)
    assert cam.layer_name == "redness"
    heat, index, prob = cam.heatmap(image)
    assert index == 0 and prob > 0.5 and heat.shape == (32, 32)
    assert heat.max() == pytest.approx(1.0)
    assert heat[20:28, 4:12].min() > 0.9 and heat[:16].max() == 0.0
    # the same after a save and reload (the run folder's model.keras)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(GradCam(reloaded).heatmap(image)[0], heat, atol=1e-5)
    blended = overlay(image, heat)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    assert not np.array_equal(blended[24, 8], image[24, 8])


def test_a_keras_application_backbone_has_a_feature_map():
    backbone = build_backbone(resolve_backbone("MobileNetV3Small"), weights="none", image_size=32)
    model = build_classifier(backbone, 3, 32)
    layer = last_feature_map_layer(model.get_layer("backbone"))
    assert len(layer.output.shape) == 4
    heat, index, _ = GradCam(model).heatmap(np.zeros((32, 32, 3), np.uint8), class_index=2)
    assert index == 2 and heat.min() >= 0 and heat.max() <= 1


def test_a_vector_only_backbone_is_refused_with_a_reason():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Flatten()(inputs)
    model = build_classifier(keras.Model(inputs, keras.layers.Dense(4)(x), name="backbone"), 2, 32)
    with pytest.raises(GradCamError, match="no convolutional feature map"):
        GradCam(model)


def nested_red_detector(tmp_path, levels: int = 1) -> keras.Model:
    """A classifier whose backbone is a saved classifier's ``model.keras`` (a model in a model),
    ``levels`` times over; each head's class 0 weight on the redness channel is positive."""
    model = red_detector()
    for level in range(levels):
        path = tmp_path / f"level{level}.keras"
        model.save(path)
        backbone = build_backbone(resolve_backbone(str(path)), weights="imagenet", image_size=32)
        model = build_classifier(backbone, 2, 32)
        model.get_layer("predictions").set_weights(
            [np.array([[4.0, -4.0]], np.float32), np.zeros(2, np.float32)]
        )
    return model


@pytest.mark.parametrize("levels", [1, 2])
def test_a_trained_runs_model_as_backbone_has_its_feature_map_found_inside(tmp_path, levels):
    image = np.full((32, 32, 3), 40, np.uint8)
    image[20:28, 4:12] = (250, 10, 10)
    expected, _, _ = GradCam(red_detector()).heatmap(image)
    model = nested_red_detector(tmp_path, levels)
    backbone = model.get_layer("backbone")
    assert any(isinstance(layer, keras.Model) for layer in backbone.layers)  # really nested
    assert last_feature_map_layer(backbone).name == "redness"
    for m in (model, _saved_and_loaded(model, tmp_path / "outer.keras")):
        cam = GradCam(m)
        assert cam.layer_name == "redness" and cam.layer_path.count("/") == levels + 1
        heat, index, prob = cam.heatmap(image)
        assert heat.shape == (32, 32) and index == 0 and prob > 0.5
        np.testing.assert_allclose(heat, expected, atol=1e-5)


def test_a_named_layer_is_found_in_a_nested_model(tmp_path):
    model = nested_red_detector(tmp_path)
    assert GradCam(model, layer_name="redness").layer_name == "redness"
    with pytest.raises(GradCamError, match="no layer named 'nowhere'"):
        GradCam(model, layer_name="nowhere")


def _saved_and_loaded(model: keras.Model, path) -> keras.Model:
    from tlstudio.core.backbone.kerashub import load_model_file

    model.save(path)
    return load_model_file(path)
