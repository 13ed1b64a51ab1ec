"""A TF Hub handle or a local SavedModel folder as a fine-tunable Keras 3 backbone.

``hub.KerasLayer`` is a Keras 2 layer and fails inside Keras 3 models, and ``keras.layers.TFSMLayer``
cannot be fine-tuned with Keras 3 optimizers (the SavedModel's variable names, such as
``conv/kernel:0``, are not valid names for optimizer slots). ``SavedModelLayer`` loads the
SavedModel with ``tf.saved_model.load`` and registers each of its variables as a Keras weight
with a clean name that *shares the same storage* (the Keras variable's backing ``tf.Variable`` is
the restored one), so the restored functions read exactly what the optimizer updates.

Before it is used, the function the layer calls is read as a graph: one that writes or reads files or
runs Python is refused (``graph_ops``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from tlstudio.core.backbone.graph_ops import check_functions, concrete_functions
from tlstudio.core.backbone.sources import BackboneError, is_hub_handle


def resolve_hub_handle(handle: str) -> Path:
    """The local folder of a hub model: cached, or downloaded (needs network)."""
    cache = os.environ.get("TFHUB_CACHE_DIR", str(Path(tempfile.gettempdir()) / "tfhub_modules"))
    if importlib.util.find_spec("tensorflow_hub") is None:
        raise BackboneError(
            f"the hub model {handle} needs TF Hub, which is not installed: pip install 'tlstudio[hub]' "
            "(or download the model, unpack it and pass the folder as --backbone)"
        )
    try:
        import tensorflow_hub as hub
    except ImportError as err:  # e.g. pkg_resources gone with a new setuptools
        raise BackboneError(
            f"the hub model {handle} needs TF Hub, which does not import here ({err}): "
            "pip install 'tlstudio[hub]'"
        ) from err
    try:
        return Path(hub.resolve(handle))
    except Exception as err:
        raise BackboneError(
            f"could not fetch the hub model {handle} ({type(err).__name__}: {err}). Offline, download it "
            f"on a machine with network (hub.resolve or the model page's download), unpack it and pass "
            f"the folder as --backbone, or put it in the TF Hub cache {cache} (set TFHUB_CACHE_DIR)."
        ) from err


@keras.saving.register_keras_serializable(package="tlstudio")
class SavedModelLayer(keras.layers.Layer):
    """Calls a SavedModel's serving function; its variables are this layer's (trainable) weights."""

    def __init__(self, path: str, output_key: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.folder = str(path)
        self.output_key = output_key
        try:
            self._restored = tf.saved_model.load(self.folder)
        except Exception as err:
            raise BackboneError(f"could not load the SavedModel {self.folder}: {err}") from err
        self._fn, traced = _serving_function(self._restored, self.folder)
        check_functions(traced, f"the SavedModel backbone {self.folder}")
        variables = _variables_of(self._restored, self._fn)
        listed = getattr(self._restored, "trainable_variables", variables)
        trainable_ids = {id(v) for v in listed if v.trainable}
        for i, var in enumerate(variables):
            weight = self.add_weight(
                shape=tuple(var.shape),
                dtype=var.dtype.name,
                initializer="zeros",
                trainable=id(var) in trainable_ids,
                name=f"v{i}_{_clean(var.name)}",
            )
            weight._value = var  # share storage with the restored variable (see the module docstring)
        self.built = True

    def call(self, inputs):
        out = self._fn(tf.cast(inputs, tf.float32))
        if isinstance(out, dict):
            if self.output_key:
                return out[self.output_key]
            if len(out) != 1:
                raise BackboneError(f"{self.folder} returns several outputs ({', '.join(out)}); name one")
            return next(iter(out.values()))
        return out

    def compute_output_shape(self, input_shape):
        probe = self.call(tf.zeros((1, *input_shape[1:]), tf.float32))
        return (input_shape[0], *probe.shape[1:])

    def get_config(self):
        return super().get_config() | {"path": self.folder, "output_key": self.output_key}


def savedmodel_backbone(path: str | os.PathLike[str], image_size: int, output_key: str | None = None):
    """A Keras 3 model named ``backbone`` around a SavedModel folder (or a hub handle)."""
    folder = resolve_hub_handle(str(path)) if is_hub_handle(str(path)) else Path(path)
    inputs = keras.Input((image_size, image_size, 3), name="backbone_input")
    layer = SavedModelLayer(str(folder), output_key=output_key, name="savedmodel")
    return keras.Model(inputs, layer(inputs), name="backbone")


def _serving_function(restored, path: str):
    """The SavedModel's entry point: ``__call__`` (TF Hub), ``serve`` (Keras export) or a signature,
    with the traced functions behind it (to read before it is called)."""
    if callable(restored):
        return restored.__call__, concrete_functions(restored.__call__)
    for name in ("serve", "call"):
        fn = getattr(restored, name, None)
        if fn is not None:
            return fn, concrete_functions(fn)
    signatures = getattr(restored, "signatures", {})
    if "serving_default" in signatures:
        signature = signatures["serving_default"]
        key = next(iter(signature.structured_input_signature[1]))
        return (lambda x: signature(**{key: x})), [signature]
    raise BackboneError(f"{path} has no callable entry point (__call__, serve or serving_default)")


def _variables_of(restored, fn) -> list:
    """Every variable of the SavedModel (hub models list them; else those the function captures)."""
    listed = getattr(restored, "variables", None)
    if listed:
        return list(listed)
    concrete = fn.concrete_functions[0] if getattr(fn, "concrete_functions", None) else None
    found = list(concrete.variables) if concrete is not None else []
    seen, unique = set(), []
    for var in found:
        if id(var) not in seen:
            seen.add(id(var))
            unique.append(var)
    return unique


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name.split(":")[0]).strip("_") or "var"
