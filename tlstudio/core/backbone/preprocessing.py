"""Preprocessing modes: the arithmetic a backbone expects of 0–255 RGB pixels, as plain Keras layers
(loadable anywhere without TL Studio)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlstudio.core.backbone.sources import BackboneError

if TYPE_CHECKING:  # numpy loads with the work, not with `tlstudio --help` (which reaches this module)
    import numpy as np

PREPROCESSING_MODES = ("none", "unit", "tf", "caffe", "torch")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def expected_preprocessing(x: np.ndarray) -> dict[str, np.ndarray]:
    """What each preprocessing mode makes of the RGB pixels ``x`` (last axis: channels).

    Args:
        x: float pixels in 0–255.

    Returns:
        {mode: preprocessed pixels}.
    """
    import numpy as np

    return {
        "none": x,
        "unit": x / 255.0,
        "tf": x / 127.5 - 1.0,
        "caffe": x[..., ::-1] - np.array(_CAFFE_MEAN_BGR, np.float32),
        "torch": (x / 255.0 - np.array(_TORCH_MEAN)) / np.array(_TORCH_STD),
    }


def preprocessing_layers(mode: str) -> list:
    """Standard Keras layers that turn 0–255 RGB pixels into what the backbone expects."""
    import keras
    import numpy as np

    if mode == "none":
        return []
    if mode == "unit":
        return [keras.layers.Rescaling(1.0 / 255.0, name="preprocess_unit")]
    if mode == "tf":
        return [keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_tf")]
    if mode == "torch":
        return [
            keras.layers.Rescaling(1.0 / 255.0, name="preprocess_torch_scale"),
            keras.layers.Normalization(
                mean=list(_TORCH_MEAN), variance=[s * s for s in _TORCH_STD], name="preprocess_torch_norm"
            ),
        ]
    if mode == "caffe":
        # RGB -> BGR and mean subtraction as one fixed 1x1 convolution.
        kernel = np.zeros((1, 1, 3, 3), np.float32)
        for i in range(3):
            kernel[0, 0, i, 2 - i] = 1.0
        bias = -np.array(_CAFFE_MEAN_BGR, np.float32)
        conv = keras.layers.Conv2D(3, 1, name="preprocess_caffe", trainable=False)
        conv.build((None, None, None, 3))
        conv.set_weights([kernel, bias])
        return [conv]
    raise BackboneError(f"unknown preprocessing '{mode}' (choose from {', '.join(PREPROCESSING_MODES)})")
