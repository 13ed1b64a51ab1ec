"""Grad-CAM (Selvaraju et al., 2017): where in the image the evidence for a class lies.

Works on a TL Studio classifier (preprocessing layers → nested ``backbone`` → head), trained in
this process or reloaded from a run's ``model.keras``. The feature map is the output of the last
layer of the backbone whose output is a 4-D map (the last convolution block, as the Keras Grad-CAM
example uses), found inside nested models too (a run's ``model.keras`` used as the backbone of
another run holds the first run's backbone); its channels are weighted by the pooled gradients of
the class score.

The score is the class's probability for a softmax head. For a multi-label (sigmoid) head it is the
label's logit, the input of that label's sigmoid: each label is explained on its own, by its own
output alone (never through a softmax over the labels), and a label the model is sure of (its sigmoid
rounds to 1.0 in float32, whose gradient is then 0) still gets a map. The sigmoid is monotonic, so the
map is the one its probability would give wherever that gradient is representable.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core.backbone.kerashub import load_model_file
from tlstudio.core.results import run_folder as files


class GradCamError(Exception):
    """The model has no convolutional feature map to explain."""


def _sublayers(layer) -> list:
    """The layers of a nested model (Functional or Sequential) in call order; [] for a plain layer."""
    return list(getattr(layer, "layers", None) or []) if isinstance(layer, keras.Model) else []


def _feature_map_path(model: keras.Model, layer_name: str | None = None) -> list[keras.layers.Layer] | None:
    """The chain of nested layers from ``model`` down to its feature-map layer: the one named
    ``layer_name``, else the last layer with a 4-D output, searched inside nested models first."""
    for layer in reversed(_sublayers(model)):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if inner := _feature_map_path(layer, layer_name):
            return [layer, *inner]
        if layer_name is not None:
            if layer.name == layer_name:
                return [layer]
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # layers called more than once, or never
            continue
        if len(shape) == 4 and min(int(shape[1] or 0), int(shape[2] or 0)) >= 1:
            return [layer]
    return None


def last_feature_map_layer(backbone: keras.Model) -> keras.layers.Layer:
    """The last layer of ``backbone`` with a 4-D output. A model nested in it (a trained run's
    ``model.keras`` used as a backbone holds the earlier run's backbone) is searched inside, so the
    layer may lie several models deep.

    Raises:
        GradCamError: when no layer has a spatial output.
    """
    path = _feature_map_path(backbone)
    if path is None:
        raise GradCamError(
            f"no convolutional feature map found in {backbone.name}: Grad-CAM needs a layer with a 2-D "
            "spatial output (a SavedModel/Hub backbone that returns only a vector has none)"
        )
    return path[-1]


def is_multi_label(model: keras.Model) -> bool:
    """Whether ``model``'s output layer ``predictions`` is a sigmoid per label (multi-label)."""
    try:
        activation = model.get_layer("predictions").activation
    except (ValueError, AttributeError):
        return False
    return getattr(activation, "__name__", "") == "sigmoid"


def _logits(dense: keras.layers.Dense, x) -> tf.Tensor:
    """The pre-activation output of a Dense layer (``x @ kernel + bias``)."""
    x = tf.cast(x, dense.kernel.dtype)
    z = tf.matmul(x, dense.kernel)
    return z + dense.bias if dense.use_bias else z


def _call_tapped(model: keras.Model, inputs, path: list, taps: list, logits_of=None, logit_taps=None):
    """Run ``model`` on ``inputs`` in inference mode, layer by layer through its graph, going into
    the nested models of ``path`` the same way, and append the output of ``path[-1]`` to ``taps``
    (and, given a Dense layer ``logits_of`` of ``model``, its pre-activation output to ``logit_taps``).

    A nested model's ``output`` is a tensor of its own graph, not of the model that calls it, so a
    feature map inside a nested model is reached by running the graphs around it. (Rebuilding one
    flat ``keras.Model`` instead fails on the names that nested TL Studio models share, such as
    ``head_dropout``.)
    """
    head, rest = path[0], path[1:]

    def operation(op):
        if op is head and rest:
            return lambda x, *args, **kwargs: _call_tapped(op, x, rest, taps)

        def call(*args, **kwargs):
            if "training" in getattr(op, "_call_context_args", ()):
                kwargs["training"] = False
            out = op(*args, **kwargs)
            if op is logits_of and logit_taps is not None:
                logit_taps.append(_logits(op, args[0]))
            if op is head:
                taps.append(out)
            return out

        return call

    if isinstance(model, keras.Sequential):
        x = inputs
        for layer in model.layers:
            x = operation(layer)(x)
        return x
    return model._run_through_graph(inputs, operation_fn=operation)


class GradCam:
    """Heat maps for one classifier: one forward pass with the feature map kept, one backward."""

    def __init__(self, model: keras.Model, layer_name: str | None = None):
        try:
            backbone = model.get_layer("backbone")
        except ValueError as err:
            raise GradCamError("the model has no layer named 'backbone' (not a TL Studio model)") from err
        path = _feature_map_path(backbone, layer_name)
        if path is None:
            if layer_name:
                raise GradCamError(f"no layer named {layer_name!r} in {backbone.name}")
            last_feature_map_layer(backbone)  # raises with the reason
        self.layer_name = path[-1].name
        self.layer_path = "/".join(layer.name for layer in [backbone, *path])
        self.image_size = int(model.inputs[0].shape[1])
        self._classifier = model
        self._path = [backbone, *path]
        self.multi_label = is_multi_label(model)  # the score is then the label's logit

    def _forward(self, x) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The feature map, the outputs, and the scores explained (logits for a sigmoid head, else
        the outputs)."""
        taps: list = []
        logit_taps: list = []
        dense = self._classifier.get_layer("predictions") if self.multi_label else None
        probs = _call_tapped(self._classifier, x, self._path, taps, dense, logit_taps)
        if not taps:
            raise GradCamError(f"the feature map {self.layer_path} is not on the way to the model's output")
        if dense is not None and not logit_taps:
            raise GradCamError("the sigmoid layer 'predictions' is not on the way to the model's output")
        return taps[0], probs, (logit_taps[0] if dense is not None else probs)

    def heatmap(self, pixels: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int, float]:
        """Heat map in [0, 1] at the feature map's resolution for one image.

        Args:
            pixels: uint8 or float RGB pixels at the model's input size.
            class_index: the class (multi-label: the label) to explain; by default the most
                probable one.

        Returns:
            The heat map, the index explained and its probability (a label's own sigmoid output).
        """
        x = tf.constant(np.asarray(pixels, dtype=np.float32)[None])
        with tf.GradientTape() as tape:
            feature_map, probs, scores = self._forward(x)
            index = int(tf.argmax(probs[0])) if class_index is None else int(class_index)
            score = scores[:, index]
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
