"""KerasHub presets (ViT, DINOv2, DeiT, Swin, ResNet, EfficientNet, MobileNet, …) as backbones.

A preset is named three ways: ``kerashub:NAME`` (a built-in preset, downloaded by KerasHub into
its cache when online), a ``kaggle://`` or ``hf://`` handle, or a local preset folder (what
``save_to_preset`` writes: ``config.json``, ``metadata.json``, weights, and for a classifier preset
``image_converter.json``). A folder is recognised without importing Keras; a name or handle asks
KerasHub for the preset's small JSON files only (the weights come when the backbone is built).

The preset's image converter (``x * scale + offset``) becomes one of the registry's preprocessing
modes, built from plain Keras layers inside the model. Transformer backbones end in a sequence of
tokens; for those with a class token (ViT, DeiT, DINOv2/v3) the head reads that token.

KerasHub needs Python 3.11 or later: ``pip install 'tlstudio[kerashub]'``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from tlstudio.core.backbone.preprocessing import expected_preprocessing
from tlstudio.core.backbone.sources import BackboneError

PRESET_PREFIX = "kerashub:"
PRESET_METADATA = "metadata.json"  # KerasHub's file in a preset folder (not the run folder's namesake)
REMOTE_SCHEMES = ("kaggle://", "hf://")
# The vision backbone classes TL Studio offers, with a short family name.
VISION_FAMILIES = {
    "ViTBackbone": "ViT",
    "DINOV2Backbone": "DINOv2",
    "DINOV3Backbone": "DINOv3",
    "DeiTBackbone": "DeiT",
    "SwinTransformerBackbone": "Swin",
    "ResNetBackbone": "ResNet",
    "EfficientNetBackbone": "EfficientNet",
    "MobileNetBackbone": "MobileNet",
    "DenseNetBackbone": "DenseNet",
    "CSPNetBackbone": "CSPNet",
    "VGGBackbone": "VGG",
    "XceptionBackbone": "Xception",
}
_CLASS_TOKEN = {"DINOV2Backbone", "DINOV3Backbone", "DeiTBackbone"}  # ViT: when use_class_token
# A preset without an image converter: the arithmetic its family's weights were trained with
# (Google's ViT: -1…1; the others ship ImageNet mean/std converters).
_DEFAULT_MODE = {"ViTBackbone": "tf"}
INSTALL_HINT = "pip install 'tlstudio[kerashub]' (KerasHub needs Python 3.11 or later)"


def is_kerashub_source(text: str) -> bool:
    """Whether ``text`` names a KerasHub preset: ``kerashub:NAME``, a kaggle/hf handle, or a folder.

    Args:
        text: what the user typed as the backbone.

    Returns:
        True when the registry should treat it as a KerasHub preset.
    """
    return text.startswith((PRESET_PREFIX, *REMOTE_SCHEMES)) or is_preset_folder(Path(text).expanduser())


def hub_id(source: str) -> str:
    """What KerasHub's own calls take for a preset: the name without ``kerashub:``, a handle, a folder.

    Args:
        source: a ``BackboneSpec.source`` (or what the user typed).
    """
    return source.removeprefix(PRESET_PREFIX)


def is_preset_folder(path: Path) -> bool:
    """A folder that ``save_to_preset`` wrote (its metadata names a KerasHub version)."""
    try:
        meta = json.loads((path / PRESET_METADATA).read_text())
    except (OSError, ValueError):
        return False
    return (path / "config.json").is_file() and isinstance(meta, dict) and "keras_hub_version" in meta


def available() -> bool:
    """Whether KerasHub is installed."""
    return importlib.util.find_spec("keras_hub") is not None


def preset_facts(text: str) -> dict[str, Any]:
    """What TL Studio knows about a preset before building it (the registry's ``BackboneSpec`` fields).

    Args:
        text: ``kerashub:NAME``, a kaggle/hf handle, or a local preset folder.

    Returns:
        The fields of a ``BackboneSpec`` of kind "kerashub"; its ``source`` is ``text`` as given (a
        project stores it, and ``resolve_backbone`` takes it back); ``hub_id`` is what KerasHub loads.

    Raises:
        BackboneError: not a vision backbone, KerasHub missing, or the preset cannot be fetched.
    """
    source = hub_id(text)
    folder = Path(text).expanduser()
    if is_preset_folder(folder):
        read = _folder_reader(folder)
        name, text = folder.name, str(folder)
    else:
        read = _remote_reader(source, text)
        name = source.rstrip("/").split("/")[-2 if re.fullmatch(r"\d+", source.rsplit("/", 1)[-1]) else -1]
    config = read("config.json")
    if config is None:
        raise BackboneError(f"{text}: the preset has no config.json")
    class_name = str(config.get("class_name", ""))
    if class_name not in VISION_FAMILIES:
        offered = ", ".join(sorted(VISION_FAMILIES))
        raise BackboneError(
            f"{text} is a {class_name or 'model'}, not an image backbone TL Studio offers ({offered})"
        )
    inner = config.get("config", {})
    meta = read(PRESET_METADATA) or {}
    converter = read("image_converter.json")
    converter_config = (converter or {}).get("config", {})
    size = _preset_size(inner, converter_config)
    class_token = class_name in _CLASS_TOKEN or (
        class_name == "ViTBackbone" and inner.get("use_class_token", True)
    )
    return dict(
        name=name,
        kind="kerashub",
        family=f"KerasHub {VISION_FAMILIES[class_name]}",
        default_size=size or 224,
        min_size=32,
        params=meta.get("parameter_count"),
        preprocessing=converter_mode(converter_config)
        if converter
        else _DEFAULT_MODE.get(class_name, "torch"),
        source=text,
        class_token=bool(class_token),
        fixed_size=size if fixed_size_family(VISION_FAMILIES[class_name]) else None,
    )


def converter_mode(config: dict) -> str:
    """Which preprocessing mode a KerasHub image converter's ``x * scale + offset`` is.

    Args:
        config: the converter's config (``scale`` and ``offset``: numbers, per-channel lists or None).

    Returns:
        "none", "unit", "tf" or "torch".

    Raises:
        BackboneError: arithmetic that none of the modes computes.
    """
    import numpy as np  # (not at import: `tlstudio --help` reaches this module)

    x = np.array([[10.0, 20.0, 30.0], [200.0, 100.0, 50.0]], np.float32)
    scale = 1.0 if config.get("scale") is None else np.asarray(config["scale"], np.float32)
    offset = 0.0 if config.get("offset") is None else np.asarray(config["offset"], np.float32)
    y = x * scale + offset
    for mode, expected in expected_preprocessing(x).items():
        if mode != "caffe" and np.allclose(y, expected, atol=1e-3):
            return mode
    raise BackboneError(
        f"the preset's image converter (scale {config.get('scale')}, offset {config.get('offset')}) "
        "matches none of TL Studio's preprocessing modes; choose one with --preprocessing"
    )


def build_kerashub_backbone(spec, *, weights: str = "imagenet", image_size: int | None = None):
    """Build the preset's backbone as a functional model named ``backbone``.

    Args:
        spec: a ``BackboneSpec`` of kind "kerashub".
        weights: "imagenet" (any pretrained choice: the preset's own weights) or "none" (the same
            architecture, randomly initialised: the from-scratch baseline).
        image_size: square input size; a ViT preset takes only its own size.

    Returns:
        The KerasHub ``Backbone`` (a functional model) named ``backbone``.
    """
    keras_hub = import_kerashub()

    if weights not in ("imagenet", "none", "None", ""):
        raise BackboneError(
            "a KerasHub preset carries its own weights: use --weights imagenet (the preset's) or none"
        )
    size = image_size or spec.default_size
    if spec.fixed_size and size != spec.fixed_size:
        raise BackboneError(
            f"{spec.name} takes only {spec.fixed_size} px images (its position embeddings are fixed); "
            f"use --image-size {spec.fixed_size}"
        )
    try:  # the Backbone itself, renamed: saved, it is rebuilt from its own config (its inner
        # layers' configs do not all load back: ViTPatchingAndEmbedding's, in KerasHub 0.32)
        return keras_hub.models.Backbone.from_preset(
            hub_id(spec.source),
            load_weights=weights == "imagenet",
            image_shape=(size, size, 3),
            name="backbone",
        )
    except Exception as err:
        raise BackboneError(fetch_message(spec.source, err)) from err


def list_presets() -> list[dict[str, Any]]:
    """The built-in vision presets of the installed KerasHub (empty when it is not installed).

    Returns:
        ``{"name": "kerashub:…", "family": …, "params": …}`` per preset, by family then size.
    """
    if not available():
        return []
    import_kerashub()
    from keras_hub.src.utils.preset_utils import BUILTIN_PRESETS_FOR_BACKBONE

    found = []
    for cls, presets in BUILTIN_PRESETS_FOR_BACKBONE.items():
        family = VISION_FAMILIES.get(cls.__name__)
        if family:
            for name, preset in presets.items():
                params = preset.get("metadata", {}).get("params")
                found.append({"name": PRESET_PREFIX + name, "family": f"KerasHub {family}", "params": params})
    return sorted(found, key=lambda p: (str(p["family"]), p["params"] or 0, str(p["name"])))


def fixed_size_family(family: str) -> bool:
    """Whether a family's presets take only their own input size (ViT and DeiT: fixed position
    embeddings; DINOv2/v3 interpolate theirs, convolutional families take any size)."""
    return family.removeprefix("KerasHub ") in ("ViT", "DeiT")


def load_model_file(path: str | Path):
    """Load a saved ``.keras`` model in safe mode, importing KerasHub first when the model uses its
    layers (they register themselves on import).

    Args:
        path: a ``.keras`` file (a run's ``model.keras``).

    Returns:
        The Keras model.
    """
    import keras

    try:
        with zipfile.ZipFile(path) as archive:
            uses = b"keras_hub" in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        uses = False
    if uses:
        import_kerashub()
    return keras.models.load_model(path, safe_mode=True)


def import_kerashub():
    """KerasHub, imported; or a ``BackboneError`` that says how to get it.

    Returns:
        The ``keras_hub`` module.
    """
    try:
        import keras_hub
    except ImportError as err:
        if getattr(sys, "frozen", False):  # the PyInstaller bundle: there is no pip to run in it
            raise BackboneError(
                "KerasHub backbones are not in this TL Studio bundle: install TL Studio with pip "
                f"instead to use them ({INSTALL_HINT})"
            ) from err
        raise BackboneError(
            f"KerasHub backbones need KerasHub, which is not installed here: {INSTALL_HINT}"
        ) from err
    return keras_hub


def _preset_size(inner: dict, converter: dict) -> int | None:
    for shape in (converter.get("image_size"), inner.get("image_shape")):
        if isinstance(shape, list | tuple) and shape and shape[0]:
            return int(shape[0])
    return None


def _folder_reader(folder: Path):
    def read(file: str) -> dict | None:
        try:
            return json.loads((folder / file).read_text())
        except OSError:
            return None
        except ValueError as err:
            raise BackboneError(f"{folder / file} is not valid JSON: {err}") from err

    return read


def _remote_reader(source: str, text: str):
    import_kerashub()
    from keras_hub.src.utils.preset_utils import BUILTIN_PRESETS, get_file

    if "://" not in source and source not in BUILTIN_PRESETS:
        close = [p for p in BUILTIN_PRESETS if source.lower() in p.lower()][:5]
        hint = f" Did you mean {', '.join(PRESET_PREFIX + c for c in close)}?" if close else ""
        raise BackboneError(
            f"unknown KerasHub preset '{source}'.{hint} `tlstudio backbones --kerashub` lists them"
        )

    def read(file: str) -> dict | None:
        try:
            return json.loads(Path(get_file(source, file)).read_text())
        except FileNotFoundError:
            return None
        except Exception as err:
            raise BackboneError(fetch_message(text, err)) from err

    return read


def fetch_message(text: str, err: Exception) -> str:
    cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"could not load the KerasHub preset {text} ({cause}). Offline, a preset must be in KerasHub's "
        "cache (~/.cache/kagglehub) or in a local folder: on a machine with network run "
        "`keras_hub.models.Backbone.from_preset(NAME).save_to_preset(FOLDER)` (or download it from "
        "its Kaggle page), copy the folder here and pass it as --backbone FOLDER."
    )
