"""Training settings: one dataclass the CLI, the GUI and project files share, with defaults that
follow good transfer-learning practice. Pure data: importing this module loads no TensorFlow."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace

from tlstudio.core.freeze_plan import FreezePlan

# The split's defaults: the settings and the split maker (``data/split.py``) both read these.
VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
SEED = 42
SUGGEST_COUNT = 20  # `tlstudio suggest --n` and the Label next tab
SUGGEST_POOL_FACTOR = 3  # the most uncertain POOL_FACTOR × n images are the pool diversity picks from
PSEUDO_LABEL_CONFIDENCE = 0.95  # `suggest --pseudo-label`: only images the run is at least this sure of
# early stopping counts a fall in validation loss smaller than this as no improvement: with 0, a
# 16-image folder whose loss fell 1e-6 a step ran 167 of its 200 fine-tune epochs (747 s) to end where
# the probe was (docs/benchmark-offline-backbone.md); the best weights are kept either way
EARLY_STOPPING_MIN_DELTA = 1e-4


@dataclass(frozen=True)
class HeadSettings:
    """The new classification head."""

    pooling: str = "avg"  # "avg" or "max"
    dropout: float = 0.2
    dense_units: tuple[int, ...] = ()


def parse_dense_units(text: str) -> tuple[int, ...]:
    """The head's extra dense layers from their text form, as the CLI, the form and the tree take it.

    Args:
        text: comma-separated positive unit counts, e.g. ``"256,128"``; empty or ``none`` for none.

    Returns:
        The unit counts, in order.

    Raises:
        ValueError: a piece that is not a positive whole number.
    """
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    units = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue  # "256," while typing
        if not piece.isdigit() or int(piece) < 1:
            raise ValueError(f"dense layers: '{piece}' is not a positive number of units (e.g. 256,128)")
        units.append(int(piece))
    return tuple(units)


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation applied to training batches only."""

    flip: bool = True  # horizontal
    rotation: float = 0.05  # fraction of a full turn, either way
    zoom: float = 0.0  # fraction, in and out
    contrast: float = 0.0  # factor

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        return self.flip or self.rotation > 0 or self.zoom > 0 or self.contrast > 0

    def layers(self, seed: int) -> list:
        """The Keras preprocessing layers for this augmentation."""
        import keras

        out = []
        if self.flip:
            out.append(keras.layers.RandomFlip("horizontal", seed=seed))
        if self.rotation > 0:
            out.append(keras.layers.RandomRotation(self.rotation, fill_mode="reflect", seed=seed + 1))
        if self.zoom > 0:
            out.append(keras.layers.RandomZoom(self.zoom, fill_mode="reflect", seed=seed + 2))
        if self.contrast > 0:
            out.append(keras.layers.RandomContrast(self.contrast, value_range=(0, 255), seed=seed + 3))
        return out


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run needs besides the data.

    Defaults (``core.recipe`` turns them into phases): a frozen backbone and a new head fitted as a
    linear probe on cached features (phase 1), then the top two blocks unfrozen at a 10× lower rate
    than 1e-3, each lower block at half the rate of the one above it, warm-up and cosine decay, a
    budget sized by the data (phase 2), then WiSE-FT interpolation; BatchNorm frozen, in inference
    mode (``freeze.train_batchnorm``); early stopping on validation loss with the best weights
    restored; class weights when the classes are imbalanced more than 5:1.
    """

    backbone: str
    weights: str = "imagenet"
    image_size: int | None = None  # None: the backbone's default (or the model file's input size)
    cut_at: str | None = None  # model files: layer whose output are the features
    preprocessing: str | None = None  # None: what the backbone needs
    head: HeadSettings = field(default_factory=HeadSettings)
    freeze: FreezePlan = field(default_factory=FreezePlan)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    auto_batch_size: bool = True  # halved (and the run started again) when memory runs out
    epochs: int = 20
    fine_tune_epochs: int | None = None  # phase 2; None: sized by the data (recipe.FINE_TUNE_RULES); 0: off
    fine_tune_blocks: int = 2
    fine_tune_lr_factor: float = 0.1
    fine_tune_lr_decay: float | None = 0.5
    early_stopping_patience: int = 5
    augmentation: Augmentation = field(default_factory=Augmentation)
    class_weights: str = "auto"  # "auto", "balanced" or "none"
    seed: int = SEED
    val_fraction: float = VAL_FRACTION
    test_fraction: float = TEST_FRACTION
    cache: str = "auto"
    mixed_precision: str = "auto"  # "auto": on for GPUs with tensor cores (compute capability ≥ 7.0)
    device: str = "auto"  # "auto" (the first GPU, else the CPU), "cpu" or "gpu:N"
    feature_cache: bool = True  # frozen backbone, no augmentation: compute its features once
    strategy: str = "default"  # "default" (one device), "mirrored" (every local GPU), "multiworker"
    calibrate: bool = False  # temperature scaling fitted on the validation split, baked into the export
    interpolate: bool = True  # WiSE-FT: probe and fine-tuned weights mixed, α chosen on validation

    def __post_init__(self) -> None:
        _check_ranges(self)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        data = asdict(self)
        data["freeze"]["frozen_layers"] = sorted(self.freeze.frozen_layers)
        data["freeze"]["block_lr"] = [list(p) for p in self.freeze.block_lr]
        data["head"]["dense_units"] = list(self.head.dense_units)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TrainSettings:
        """Inverse of ``to_dict``; unknown keys and values of the wrong type are refused.

        Raises:
            ValueError: naming the field and what it must be.
        """
        if not isinstance(data, dict):
            raise ValueError(f"settings must be an object, not {type(data).__name__}")
        data = dict(data)
        if isinstance(data.get("mixed_precision"), bool):  # projects before "auto": a tick was "on"
            data["mixed_precision"] = "on" if data["mixed_precision"] else "auto"
        _check_fields(cls, data, "settings")
        try:
            if isinstance(data.get("head"), dict):
                head = dict(data["head"])
                _check_fields(HeadSettings, head, "settings.head")
                head["dense_units"] = tuple(head.get("dense_units", ()))
                data["head"] = HeadSettings(**head)
            if isinstance(data.get("freeze"), dict):
                plan = dict(data["freeze"])
                _check_fields(FreezePlan, plan, "settings.freeze")
                layers = plan.get("frozen_layers", ())
                if not all(isinstance(name, str) for name in layers):
                    raise ValueError(
                        f"settings.freeze.frozen_layers must be layer names, not {_show(layers)}"
                    )
                plan["frozen_layers"] = frozenset(layers)
                pairs = plan.get("block_lr", ())  # [block, multiplier] pairs; anything else is named below
                plan["block_lr"] = tuple(tuple(p) if isinstance(p, list) else p for p in pairs)
                data["freeze"] = FreezePlan(**plan)
            if isinstance(data.get("augmentation"), dict):
                _check_fields(Augmentation, data["augmentation"], "settings.augmentation")
                data["augmentation"] = Augmentation(**data["augmentation"])
            return cls(**data)
        except TypeError as err:
            raise ValueError(f"settings: {err}") from err

    def but(self, **changes) -> TrainSettings:
        """A copy with some fields changed."""
        return replace(self, **changes)


# The range every number of the settings must fall in, checked when TrainSettings is made (from the
# CLI, the app or a project file), so a bad value is refused at once, by its name, before any run
# folder is claimed. Generous: they refuse nonsense (a seed of 2**70, a rotation of 1e9 turns), not taste.
MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 4096
MAX_BATCH_SIZE = 65_536
MAX_EPOCHS = 100_000
MAX_BLOCKS = 10_000
MAX_DENSE_UNITS = 65_536
MAX_DENSE_LAYERS = 32
MAX_LEARNING_RATE = 10.0
MAX_LR_FACTOR = 100.0  # fine_tune_lr_factor
MAX_BLOCK_LR = 10.0  # each freeze.block_lr multiplier (the layer tree's editor takes 0 < m <= 10)
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds alike
_SHOWN = 60  # characters of a refused value a message shows


def _show(value: object) -> str:
    """A refused value as a message shows it: its repr, on one line, cut short."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested past Python's limit; an int of over 4,300 digits
        text = f"{type(value).__name__} too large to show"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _whole(name: str, value: object, low: int, high: int) -> None:
    """Refuse ``value`` unless it is a whole number (not a bool) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high:,}, not {_show(value)}")


def _real(name: str, value: object, low: float, high: float, *, above_low: bool = False, below_high=False):
    """Refuse ``value`` unless it is a finite number (not a bool) in the range, ends as flagged open."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if above_low else value >= low) and (value < high if below_high else value <= high)
    if not ok:
        left, right = "(" if above_low else "[", ")" if below_high else "]"
        raise ValueError(
            f"{name} must be a finite number in {left}{low:g}, {high:g}{right}, not {_show(value)}"
        )


def _one_line_text(name: str, value: object, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or any(c in value for c in "\0\n\r"):
        raise ValueError(f"{name} must be text on one line, not {_show(value)}")


def _check_ranges(s: TrainSettings) -> None:
    """Every field of ``s`` of the right type and in its range; the first that is not is named.

    Raises:
        ValueError: naming the field (as in a project file's ``settings``), its range and the value.
    """
    _one_line_text("backbone", s.backbone)
    _one_line_text("weights", s.weights)
    _one_line_text("cut_at", s.cut_at, optional=True)
    _one_line_text("cache", s.cache)
    if s.image_size is not None:
        _whole("image_size", s.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    if s.preprocessing is not None and s.preprocessing not in PREPROCESSING:
        raise ValueError(
            f"preprocessing must be one of {', '.join(PREPROCESSING)} (or unset: the backbone's), "
            f"not {_show(s.preprocessing)}"
        )
    if s.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {_show(s.optimizer)} (choose from {', '.join(OPTIMIZERS)})")
    if s.class_weights not in CLASS_WEIGHTS:
        raise ValueError(f"class_weights must be auto, balanced or none, not {_show(s.class_weights)}")
    if s.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {_show(s.strategy)} (choose from {', '.join(STRATEGIES)})")
    if s.mixed_precision not in MIXED_PRECISION:
        raise ValueError(
            f"mixed_precision must be {', '.join(MIXED_PRECISION)}, not {_show(s.mixed_precision)}"
        )
    if not isinstance(s.device, str) or not re.fullmatch(DEVICE_PATTERN, s.device):
        raise ValueError(
            f"device must be auto, cpu or gpu:N (N from `tlstudio devices`), not {_show(s.device)}"
        )
    for name in ("auto_batch_size", "feature_cache", "calibrate", "interpolate"):
        if not isinstance(getattr(s, name), bool):
            raise ValueError(f"{name} must be true or false, not {_show(getattr(s, name))}")
    _real("learning_rate", s.learning_rate, 0, MAX_LEARNING_RATE, above_low=True)
    _real("fine_tune_lr_factor", s.fine_tune_lr_factor, 0, MAX_LR_FACTOR, above_low=True)
    if s.fine_tune_lr_decay is not None:
        _real("fine_tune_lr_decay", s.fine_tune_lr_decay, 0, 1, above_low=True)
    _whole("batch_size", s.batch_size, 1, MAX_BATCH_SIZE)
    _whole("epochs", s.epochs, 1, MAX_EPOCHS)
    if s.fine_tune_epochs is not None:
        _whole("fine_tune_epochs", s.fine_tune_epochs, 0, MAX_EPOCHS)
    _whole("fine_tune_blocks", s.fine_tune_blocks, 0, MAX_BLOCKS)
    _whole("early_stopping_patience", s.early_stopping_patience, 1, MAX_EPOCHS)
    _whole("seed", s.seed, 0, MAX_SEED)
    fractions = (s.val_fraction, s.test_fraction)
    if (
        not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f < 1 for f in fractions)
        or sum(fractions) >= 0.9
    ):
        raise ValueError(
            "val_fraction and test_fraction must each be from 0 to below 1 and leave at least a tenth "
            f"of the images for training (they are {_show(s.val_fraction)} and {_show(s.test_fraction)})"
        )
    _check_head(s.head)
    _check_augmentation(s.augmentation)
    _check_freeze(s.freeze)


def _check_head(head: HeadSettings) -> None:
    if not isinstance(head, HeadSettings):
        raise ValueError(f"head must be head settings, not {_show(head)}")
    if head.pooling not in ("avg", "max"):
        raise ValueError(f"the head's pooling must be avg or max, not {_show(head.pooling)}")
    _real("the head's dropout", head.dropout, 0, 1, below_high=True)
    units = head.dense_units
    if not isinstance(units, tuple) or len(units) > MAX_DENSE_LAYERS:
        raise ValueError(
            f"head.dense_units must be a list of at most {MAX_DENSE_LAYERS} layers, not {_show(units)}"
        )
    for n in units:
        _whole("head.dense_units (each layer's units)", n, 1, MAX_DENSE_UNITS)


def _check_augmentation(augmentation: Augmentation) -> None:
    if not isinstance(augmentation, Augmentation):
        raise ValueError(f"augmentation must be augmentation settings, not {_show(augmentation)}")
    if not isinstance(augmentation.flip, bool):
        raise ValueError(f"augmentation.flip must be true or false, not {_show(augmentation.flip)}")
    _real("augmentation.rotation (a fraction of a full turn)", augmentation.rotation, 0, 1)
    _real("augmentation.zoom (a fraction)", augmentation.zoom, 0, 1, below_high=True)
    _real("augmentation.contrast (a factor)", augmentation.contrast, 0, 1)


def _check_freeze(plan: FreezePlan) -> None:
    """What ``FreezePlan`` itself does not check: finite numbers, layer names, per-block rates."""
    if not isinstance(plan, FreezePlan):
        raise ValueError(f"freeze must be a freeze plan, not {_show(plan)}")
    if plan.preset == "top":
        _real("freeze.value (top:N blocks)", plan.value, 0, MAX_BLOCKS)
        if plan.value != int(plan.value):
            raise ValueError(f"freeze.value (top:N blocks) must be a whole number, not {_show(plan.value)}")
    else:
        _real("freeze.value (first:P%)", plan.value, 0, 100)
    if not isinstance(plan.train_batchnorm, bool):
        raise ValueError(f"freeze.train_batchnorm must be true or false, not {_show(plan.train_batchnorm)}")
    if not isinstance(plan.frozen_layers, frozenset) or not all(
        isinstance(name, str) and name for name in plan.frozen_layers
    ):
        raise ValueError(
            f"freeze.frozen_layers must be a list of layer names, not {_show(plan.frozen_layers)}"
        )
    if plan.lr_decay is not None:
        _real("freeze.lr_decay", plan.lr_decay, 0, 1, above_low=True)
    if not isinstance(plan.block_lr, tuple):
        raise ValueError(
            f"freeze.block_lr must be a list of [block, multiplier] pairs, not {_show(plan.block_lr)}"
        )
    seen = set()
    for pair in plan.block_lr:
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str) or not pair[0]:
            raise ValueError(
                f"freeze.block_lr must be [block name, multiplier] pairs, not {_show(pair)} "
                '(e.g. [["block_6", 0.5]])'
            )
        _real(f"freeze.block_lr multiplier of {_show(pair[0])}", pair[1], 0, MAX_BLOCK_LR, above_low=True)
        if pair[0] in seen:
            raise ValueError(f"freeze.block_lr names block {_show(pair[0])} twice")
        seen.add(pair[0])


_SIMPLE = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_NESTED = {"HeadSettings", "FreezePlan", "Augmentation"}


def _check_fields(cls, data: dict, where: str) -> None:
    """Refuse unknown keys and values whose type does not match the dataclass field's."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        names = sorted(n if n.isprintable() and len(n) <= _SHOWN else _show(n) for n in map(str, unknown))
        raise ValueError(f"unknown {where} field(s): {', '.join(names)}"[:300])
    for name, value in data.items():
        annotation = str(known[name].type)
        options = [a.strip() for a in annotation.split("|")]
        if value is None and "None" in options:
            continue
        ok = False
        for option in options:
            if option in _SIMPLE:
                wanted = _SIMPLE[option]
                ok = isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted)
            elif option in _NESTED:
                ok = isinstance(value, dict) or type(value).__name__ == option
            elif option.startswith(("tuple", "frozenset", "list")):
                ok = isinstance(value, (list, tuple, set, frozenset))
            if ok:
                break
        if not ok:
            raise ValueError(
                f"{where}.{name} must be {annotation}, not {type(value).__name__} {_show(value)}"
            )


# What a person calls each setting, by its dotted key in a run's settings.json: the app's label and the
# CLI option that sets it (None: the CLI has no option of its own for it). One source for the settings
# diff of `tlstudio runs --diff` and of the app's run comparison; a test keeps it complete.
SETTING_NAMES: dict[str, tuple[str, str | None]] = {
    "backbone": ("Backbone", "--backbone"),
    "weights": ("Weights", "--weights"),
    "image_size": ("Image size", "--image-size"),
    "cut_at": ("Features from layer", "--cut-at"),
    "preprocessing": ("Input preprocessing", "--preprocessing"),
    "head.pooling": ("Head pooling", None),
    "head.dropout": ("Head dropout", "--dropout"),
    "head.dense_units": ("Dense layers", "--dense"),
    "freeze.preset": ("Freeze plan", "--freeze"),
    "freeze.value": ("Freeze plan amount (top:N blocks, first:P%)", "--freeze"),
    "freeze.frozen_layers": ("Frozen layers (chosen one by one)", None),
    "freeze.train_batchnorm": ("Train BatchNorm", "--train-batchnorm"),
    "freeze.block_lr": ("LR multipliers per block", None),
    "freeze.lr_decay": ("LR decay per block (freeze plan)", None),
    "optimizer": ("Optimizer", "--optimizer"),
    "learning_rate": ("Learning rate", "--learning-rate"),
    "batch_size": ("Batch size", "--batch-size"),
    "auto_batch_size": ("Batch size halved when memory runs out", "--batch-size auto"),
    "epochs": ("Head epochs", "--epochs"),
    "fine_tune_epochs": ("Fine-tune epochs", "--fine-tune-epochs"),
    "fine_tune_blocks": ("Blocks to unfreeze", "--fine-tune-blocks"),
    "fine_tune_lr_factor": ("Fine-tune learning-rate factor", None),
    "fine_tune_lr_decay": ("Fine-tune LR decay per block", "--fine-tune-lr-decay"),
    "early_stopping_patience": ("Early-stopping patience", "--patience"),
    "augmentation.flip": ("Horizontal flips", "--no-flip"),
    "augmentation.rotation": ("Rotation", "--no-augment"),
    "augmentation.zoom": ("Zoom", "--zoom"),
    "augmentation.contrast": ("Contrast", "--contrast"),
    "class_weights": ("Class weights", "--class-weights"),
    "seed": ("Split seed", "--seed"),
    "val_fraction": ("Validation share", "--val"),
    "test_fraction": ("Test share", "--test"),
    "cache": ("Dataset cache", None),
    "mixed_precision": ("Mixed precision", "--mixed-precision"),
    "device": ("Device", "--device"),
    "feature_cache": ("Cache backbone features", "--no-feature-cache"),
    "strategy": ("Strategy (Use every GPU)", "--strategy"),
    "calibrate": ("Calibrate confidences", "--calibrate"),
    "interpolate": ("WiSE-FT interpolation", "--no-interpolate"),
}


def setting_name(key: str, cli: bool = False) -> str:
    """What a person calls a setting.

    Args:
        key: its dotted key in a run's settings.json (``learning_rate``, ``head.dropout``).
        cli: for the terminal: the label followed by the option that sets it.

    Returns:
        The app's label (``"Learning rate"``), with ``cli`` e.g. ``"Learning rate (--learning-rate)"``;
        a key this table does not know (a newer run's) as it is.

    Example:
        >>> setting_name("early_stopping_patience", cli=True)
        'Early-stopping patience (--patience)'
    """
    if key not in SETTING_NAMES:
        return key
    label, option = SETTING_NAMES[key]
    return f"{label} ({option})" if cli and option else label


def defaults() -> TrainSettings:
    """Every default in one object (the CLI's defaults and help text are read from here)."""
    return TrainSettings(backbone="")


OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
CLASS_WEIGHTS = ("auto", "balanced", "none")
STRATEGIES = ("default", "mirrored", "multiworker")
MIXED_PRECISION = ("auto", "on", "off")
DEVICE_PATTERN = r"auto|cpu|gpu:\d+"  # --device and the settings' device field
# --preprocessing and the settings' field: backbone/preprocessing.py's PREPROCESSING_MODES (settings may
# not import the backbone package; a test keeps the two the same)
PREPROCESSING = ("none", "unit", "tf", "caffe", "torch")


def make_optimizer(name: str, learning_rate):
    """A fresh Keras optimizer; ``learning_rate`` is a number or a Keras schedule."""
    import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    return keras.optimizers.RMSprop(learning_rate)
