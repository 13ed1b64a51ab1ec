"""Training settings: one dataclass the CLI, the GUI and project files share, with defaults that
follow good transfer-learning practice. Pure data: importing this module loads no TensorFlow."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tlstudio.core import settings_checks
from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.settings_checks import check_fields, check_ranges, show
from tlstudio.core.vocabulary import (
    ClassWeights,
    MixedPrecision,
    Optimizer,
    Peft,
    Preprocessing,
    ProbeFeatures,
    SmallFolderVal,
    Strategy,
)

# The settings' vocabulary: Literal types in core/vocabulary.py, checked in settings_checks, read from here
OPTIMIZERS = settings_checks.OPTIMIZERS
CLASS_WEIGHTS = settings_checks.CLASS_WEIGHTS
SMALL_FOLDER_VAL = settings_checks.SMALL_FOLDER_VAL
STRATEGIES = settings_checks.STRATEGIES
MIXED_PRECISION = settings_checks.MIXED_PRECISION
DEVICE_PATTERN = settings_checks.DEVICE_PATTERN
PREPROCESSING = settings_checks.PREPROCESSING
PEFT_MODES = settings_checks.PEFT_MODES
PROBE_FEATURES = settings_checks.PROBE_FEATURES
LINEAR4_BLOCKS = 4  # probe_features "last4": class tokens of this many last blocks (DINOv2's linear4)

# The split's defaults: the settings and the split maker (``data/split.py``) both read these.
VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
SEED = 42
PREDICT_TOP = 3  # `tlstudio predict --top` and `tlstudio.predict(top=)`: classes given per image
SUGGEST_COUNT = 20  # `tlstudio suggest --n` and the Label next tab
SUGGEST_POOL_FACTOR = 3  # the most uncertain POOL_FACTOR × n images are the pool diversity picks from
PSEUDO_LABEL_CONFIDENCE = 0.95  # `suggest --pseudo-label`: only images the run is at least this sure of
PSEUDO_FOLDER = "pseudo-labels"
"""Images in ``CLASS/pseudo-labels/`` carry a label a model gave them (``tlstudio suggest --pseudo-label``):
they are used for training only, never for validation or test."""
TRY_LIVE_INTERVAL_MS = 200  # Try it's camera and video source: at most one frame tried per this long
# `tlstudio sweep` (core/studies): trials in the study, all workers together; how often a worker says
# it is alive (a trial whose worker is silent for SWEEP_GRACE_FACTOR × that is failed and retried)
SWEEP_TRIALS = 20
SWEEP_STUDY = "sweep"
SWEEP_HEARTBEAT_S = 30
SWEEP_GRACE_FACTOR = 3
SWEEP_IMAGE_SIZES = (160, 192, 224)  # the default space's sizes, for backbones that take any size
# early stopping counts a fall in validation loss smaller than this as no improvement: with 0, a
# 16-image folder whose loss fell 1e-6 a step ran 167 of its 200 fine-tune epochs (747 s) to end where
# the probe was (docs/benchmark-offline-backbone.md); the best weights are kept either way
EARLY_STOPPING_MIN_DELTA = 1e-4
# BLAS/OpenMP threads of NumPy and SciPy in the probe and the label check (threadpoolctl): beside
# TensorFlow's own pools, or other jobs, more threads made the same fit 6× slower on 2 cores
BLAS_THREADS = 1
LABEL_CHECK_FOLDS = 5  # the label check scores each image with a probe fitted on the other folds
# A small folder trains on every image not in test: when the validation split would hold fewer than this
# many images a class (on average), its images join training, and the choices validation made are made
# without it (the probe's L2 by cross-validation, the fine-tune budget by rule, no WiSE-FT). At 8 images
# a class the held-out 1 image a class chose nothing reliably and cost a fifth of the labels:
# benchmarks/recipe_quality.py --counts 8 scored 0.894 with it held out, 0.922 training on it (3 seeds)
SMALL_VAL_PER_CLASS = 2
# multi-label: a label is given when its probability reaches its threshold, tuned on validation per
# label (highest F1); this one where validation has no image of the label
MULTI_LABEL_THRESHOLD = 0.5
# multi-label class weights: a label's positive weight (negatives / positives in training) is kept
# within [1 / this, this], so a label on 1 image of 1,000 cannot drown out every other label
MULTI_LABEL_MAX_POS_WEIGHT = 100.0
BOOTSTRAP_RESAMPLES = 1000  # multi-label evaluation: resamples of the test images for the intervals
# --peft lora: the rank of the adapters Keras 3's enable_lora adds to each projection (alpha = rank)
LORA_RANK = 8
PR_CURVE_POINTS = 200  # multi-label evaluation: the most points stored per label's precision-recall curve
# Greedy checkpoint soup (core/training/soup.py): the fine-tune phase keeps this many of its best epochs
# by validation loss (their trainable weights, in memory) and averages those that do not raise it. Off
# by default: with 3 it changed the unseen-image accuracy by 0 on average over 18 runs (shapes, glyphs,
# textures at 30 a class, shapes at 100 a class, shapes and glyphs imbalanced; 3 seeds each; at most
# one image of 500 either way), so it stays a choice (--soup 3), see docs/benchmarks.md#checkpoint-soup
SOUP_CHECKPOINTS = 0
# `tlstudio distill` (core/training/distill.py): a small student trained on a finished run's soft labels.
# The edge students offered (any backbone of the registry, or a model file, works as well); the softening
# temperature T of both distributions; the weight of the soft term (KL × T²) against the hard-label
# cross-entropy (Hinton et al. 2015 weigh the soft targets most); epochs, Adam's rate (cosine decay) and batch
DISTILL_STUDENTS = ("MobileNetV3Small", "EfficientNetLite0")
DISTILL_TEMPERATURE = 4.0
DISTILL_SOFT_WEIGHT = 0.9
DISTILL_EPOCHS = 30
DISTILL_LEARNING_RATE = 5e-4
DISTILL_BATCH_SIZE = 32


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
    preprocessing: Preprocessing | None = None  # None: what the backbone needs
    head: HeadSettings = field(default_factory=HeadSettings)
    freeze: FreezePlan = field(default_factory=FreezePlan)
    optimizer: Optimizer = "adam"
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
    class_weights: ClassWeights = "auto"  # "auto", "balanced" or "none"
    seed: int = SEED
    val_fraction: float = VAL_FRACTION
    test_fraction: float = TEST_FRACTION
    cache: str = "auto"
    mixed_precision: MixedPrecision = "auto"  # "auto": on for GPUs with tensor cores (capability ≥ 7.0)
    device: str = "auto"  # "auto" (the first GPU, else the CPU), "cpu" or "gpu:N"
    feature_cache: bool = True  # frozen backbone, no augmentation: compute its features once
    strategy: Strategy = "default"  # "default" (one device), "mirrored" (every local GPU), "multiworker"
    calibrate: bool = False  # temperature (multi-label: Platt) scaling on validation, baked into the export
    interpolate: bool = True  # WiSE-FT: probe and fine-tuned weights mixed, α chosen on validation
    small_folder_val: SmallFolderVal = "train"  # small folders: validation trains too (small_folder.py)
    soup_checkpoints: int = SOUP_CHECKPOINTS  # greedy soup of the N best fine-tune epochs (0 or 1: off)
    peft: Peft = "none"  # fine-tune phase: "none" (whole blocks), "lora" or "bitfit" (backbone/peft.py)
    probe_features: ProbeFeatures = "auto"  # transformers: "last4" (block_tokens.py); auto: "last"

    def __post_init__(self) -> None:
        if not isinstance(self.head, HeadSettings):
            raise ValueError(f"head must be head settings, not {show(self.head)}")
        if not isinstance(self.augmentation, Augmentation):
            raise ValueError(f"augmentation must be augmentation settings, not {show(self.augmentation)}")
        check_ranges(self)

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
        fields: dict[str, Any] = dict(data)  # JSON values: each checked below
        if isinstance(fields.get("mixed_precision"), bool):  # projects before "auto": a tick was "on"
            fields["mixed_precision"] = "on" if fields["mixed_precision"] else "auto"
        check_fields(cls, fields, "settings")
        try:
            if isinstance(fields.get("head"), dict):
                head = dict(fields["head"])
                check_fields(HeadSettings, head, "settings.head")
                head["dense_units"] = tuple(head.get("dense_units", ()))
                fields["head"] = HeadSettings(**head)
            if isinstance(fields.get("freeze"), dict):
                plan = dict(fields["freeze"])
                check_fields(FreezePlan, plan, "settings.freeze")
                layers = plan.get("frozen_layers", ())
                if not all(isinstance(name, str) for name in layers):
                    raise ValueError(f"settings.freeze.frozen_layers must be layer names, not {show(layers)}")
                plan["frozen_layers"] = frozenset(layers)
                pairs = plan.get("block_lr", ())  # [block, multiplier] pairs; anything else is named below
                plan["block_lr"] = tuple(tuple(p) if isinstance(p, list) else p for p in pairs)
                fields["freeze"] = FreezePlan(**plan)
            if isinstance(fields.get("augmentation"), dict):
                check_fields(Augmentation, fields["augmentation"], "settings.augmentation")
                fields["augmentation"] = Augmentation(**fields["augmentation"])
            return cls(**fields)
        except TypeError as err:
            raise ValueError(f"settings: {err}") from err

    def but(self, **changes: Any) -> TrainSettings:
        """A copy with some fields changed."""
        return replace(self, **changes)


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
    "small_folder_val": ("Small folder: use validation", "--small-folder-val"),
    "soup_checkpoints": ("Checkpoint soup (best epochs averaged)", "--soup"),
    "peft": ("Parameter-efficient fine-tuning", "--peft"),
    "probe_features": ("Probe features", "--probe-features"),
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


def make_optimizer(name: str, learning_rate: Any) -> Any:
    """A fresh Keras optimizer; ``learning_rate`` is a number or a Keras schedule."""
    import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    return keras.optimizers.RMSprop(learning_rate)
