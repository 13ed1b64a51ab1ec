"""Grad-CAM per label of a multi-label (sigmoid) model: each label explained by its own output."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlstudio.core.backbone.classifier import build_classifier
from tlstudio.core.results.gradcam import GradCam, gradcam_for_run, is_multi_label


def colour_detector(head: list[list[float]], bias=(0.0, 0.0), multi_label: bool = True) -> keras.Model:
    """Backbone: two 1×1 conv channels, redness (red − green) and greenness (green − red); the head's
    weights ``head`` (rows: channels, columns: labels A, B)."""
    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="colours")
    backbone = keras.Model(inputs, conv(inputs), name="backbone")
    kernel = np.array([[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]], np.float32).reshape(1, 1, 3, 2)
    conv.set_weights([kernel, np.zeros(2, np.float32)])
    model = build_classifier(backbone, 2, 32, preprocessing="unit", multi_label=multi_label)
    model.get_layer("predictions").set_weights([np.array(head, np.float32), np.array(bias, np.float32)])
    return model


def red_and_green() -> np.ndarray:
    image = np.full((32, 32, 3), 40, np.uint8)
    image[4:12, 4:12] = (250, 10, 10)  # red patch
    image[20:28, 20:28] = (10, 250, 10)  # green patch, the same size
    return image


RED, GREEN = (slice(4, 12), slice(4, 12)), (slice(20, 28), slice(20, 28))
# label A: red strongly, green a little; label B: green only
HEAD = [[4.0, 0.0], [1.0, 4.0]]


def test_a_label_is_explained_by_its_own_sigmoid_not_a_softmax_over_the_labels():
    model = colour_detector(HEAD)
    assert is_multi_label(model) and not is_multi_label(colour_detector(HEAD, multi_label=False))
    cam = GradCam(model)
    assert cam.multi_label
    heat, index, prob = cam.heatmap(red_and_green(), 0)
    # its own output: 4·redness + 1·greenness, so the green patch gets a quarter of the red one's heat
    assert index == 0 and heat[RED].min() == pytest.approx(1.0) and heat[GREEN].min() == pytest.approx(0.25)
    assert prob == pytest.approx(float(np.asarray(model(red_and_green()[None].astype(np.float32)))[0, 0]))
    # a softmax over the labels would weigh A − B = 4·redness − 3·greenness: no heat on green at all
    softmax_heat, _, _ = GradCam(colour_detector(HEAD, multi_label=False)).heatmap(red_and_green(), 0)
    assert softmax_heat[GREEN].max() == 0.0
    # another label's weights do not change label A's map
    other = colour_detector([[4.0, -7.0], [1.0, 9.0]])
    np.testing.assert_allclose(GradCam(other).heatmap(red_and_green(), 0)[0], heat, atol=1e-6)


def test_a_label_the_model_is_sure_of_still_gets_its_map():
    """Its sigmoid rounds to 1.0 in float32 (a zero gradient): the label's logit is explained."""
    sure = colour_detector(HEAD, bias=(60.0, 0.0))
    heat, _, prob = GradCam(sure).heatmap(red_and_green(), 0)
    assert prob == 1.0
    np.testing.assert_allclose(heat, GradCam(colour_detector(HEAD)).heatmap(red_and_green(), 0)[0], atol=1e-6)


def test_two_labels_of_one_image_get_different_maps_on_a_trained_run(multilabel_probe_run):
    run_dir, _ = multilabel_probe_run
    cam, labels = gradcam_for_run(run_dir)
    assert cam.multi_label and labels == ["blue", "green", "red", "yellow"]
    rng = np.random.default_rng(3)
    image = np.clip(rng.normal(128, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
    image[:16, 16:] = (30, 220, 30)  # green in its quadrant (top right), as the CSV's images have it
    image[16:, :16] = (220, 30, 30)  # red (bottom left)
    green, _, p_green = cam.heatmap(image, labels.index("green"))
    red, _, p_red = cam.heatmap(image, labels.index("red"))
    assert p_green > 0.5 and p_red > 0.5  # the image has both
    assert np.abs(green - red).mean() > 0.1
    half = green.shape[0] // 2
    assert green[:half, half:].sum() > 0.5 * green.sum()  # green's evidence lies in its quadrant
    assert red[half:, :half].mean() > 0.2 > green[half:, :half].mean() + 0.15  # red's: in its own too
