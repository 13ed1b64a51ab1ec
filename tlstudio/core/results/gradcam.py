"""Grad-CAM (Selvaraju et al., 2017): where in the image the evidence for a class lies.

Works on a TL Studio classifier (preprocessing layers → nested ``backbone`` → head), trained in
this process or reloaded from a run's ``model.keras``. The feature map is the output of the last
layer of the backbone whose output is a 4-D map (the last convolution block, as the Keras Grad-CAM
example uses); its channels are weighted by the pooled gradients of the class score.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core.backbone.classifier import apply_chain
from tlstudio.core.backbone.kerashub import load_model_file
from tlstudio.core.results import run_folder as files


class GradCamError(Exception):
    """The model has no convolutional feature map to explain."""


def last_feature_map_layer(backbone: keras.Model) -> keras.layers.Layer:
    """The last layer of ``backbone`` with a 4-D output (a nested model counts as one layer)."""
    for layer in reversed(backbone.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # layers called more than once, or never
            continue
        if len(shape) == 4 and min(int(shape[1] or 0), int(shape[2] or 0)) >= 1:
            return layer
    raise GradCamError(
        f"no convolutional feature map found in {backbone.name}: Grad-CAM needs a layer with a 2-D "
        "spatial output (a SavedModel/Hub backbone that returns only a vector has none)"
    )


class GradCam:
    """Heat maps for one classifier; building it once makes each map one forward/backward pass."""

    def __init__(self, model: keras.Model, layer_name: str | None = None):
        try:
            backbone = model.get_layer("backbone")
        except ValueError as err:
            raise GradCamError("the model has no layer named 'backbone' (not a TL Studio model)") from err
        target = backbone.get_layer(layer_name) if layer_name else last_feature_map_layer(backbone)
        self.layer_name = target.name
        probe = keras.Model(backbone.inputs, [target.output, backbone.output])
        position = model.layers.index(backbone)
        inputs = keras.Input(model.inputs[0].shape[1:])
        feature_map, x = probe(apply_chain(model.layers[1:position], inputs))
        self.image_size = int(inputs.shape[1])
        self._model = keras.Model(inputs, [feature_map, apply_chain(model.layers[position + 1 :], x)])

    def heatmap(self, pixels: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int, float]:
        """Heat map in [0, 1] at the feature map's resolution for one image (uint8 or float pixels
        at the model's input size), the class explained (the predicted one by default) and its
        probability."""
        x = tf.constant(np.asarray(pixels, dtype=np.float32)[None])
        with tf.GradientTape() as tape:
            feature_map, probs = self._model(x, training=False)
            index = int(tf.argmax(probs[0])) if class_index is None else int(class_index)
            score = probs[:, index]
        grads = tape.gradient(score, feature_map)
        weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(0, 1, 2))
        cam = tf.nn.relu(tf.reduce_sum(tf.cast(feature_map[0], tf.float32) * weights, axis=-1)).numpy()
        peak = cam.max()
        return (cam / peak if peak > 0 else cam), index, float(probs[0, index])


def overlay(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The heat map (jet colours, resized to the image) blended over uint8 RGB ``pixels``."""
    from matplotlib import colormaps
    from PIL import Image

    h, w = pixels.shape[:2]
    resized = np.asarray(
        Image.fromarray(np.uint8(np.clip(heat, 0, 1) * 255)).resize((w, h), Image.Resampling.BILINEAR)
    )
    colours = colormaps["jet"](resized / 255.0)[..., :3] * 255
    return np.uint8(np.clip((1 - alpha) * pixels + alpha * colours, 0, 255))


def gradcam_for_run(run_dir) -> tuple[GradCam, list[str]]:
    """Grad-CAM over a run's ``model.keras`` (safe mode), and its labels.

    Raises:
        GradCamError: when the model has no spatial feature map.
    """
    from pathlib import Path

    run_dir = Path(run_dir)
    cam = GradCam(load_model_file(run_dir / files.MODEL))
    return cam, (run_dir / files.LABELS).read_text(encoding="utf-8").splitlines()
