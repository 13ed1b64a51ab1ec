"""The settings' vocabulary (optimizers, strategies, …) and the range every setting must fall in,
checked when ``TrainSettings`` is made — from the CLI, the app or a project file — so a bad value is
refused at once, by its name, before any run folder is claimed. ``settings`` re-exports the names."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from typing import TYPE_CHECKING

from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.vocabulary import (  # the vocabularies (Literal types), re-exported by ``settings``
    CLASS_WEIGHTS,
    MIXED_PRECISION,
    OPTIMIZERS,
    PEFT_MODES,
    PREPROCESSING,
    PROBE_FEATURES,
    SETTINGS_TYPES,
    SMALL_FOLDER_VAL,
    STRATEGIES,
)

if TYPE_CHECKING:
    from tlstudio.core.settings import Augmentation, HeadSettings, TrainSettings

DEVICE_PATTERN = r"auto|cpu|gpu:\d+"  # --device and the settings' device field
# PREPROCESSING: backbone/preprocessing.py's PREPROCESSING_MODES (settings may not import the backbone
# package; a test keeps the two the same)


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
MAX_SOUP_CHECKPOINTS = 20  # each is a copy of the fine-tuned weights in memory
MAX_LEARNING_RATE = 10.0
MAX_LR_FACTOR = 100.0  # fine_tune_lr_factor
MAX_BLOCK_LR = 10.0  # each freeze.block_lr multiplier (the layer tree's editor takes 0 < m <= 10)
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds alike
_SHOWN = 60  # characters of a refused value a message shows


def show(value: object) -> str:
    """A refused value as a message shows it: its repr, on one line, cut short."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested past Python's limit; an int of over 4,300 digits
        text = f"{type(value).__name__} too large to show"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _whole(name: str, value: object, low: int, high: int) -> None:
    """Refuse ``value`` unless it is a whole number (not a bool) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high:,}, not {show(value)}")


def _real(
    name: str, value: object, low: float, high: float, *, above_low: bool = False, below_high: bool = False
) -> None:
    """Refuse ``value`` unless it is a finite number (not a bool) in the range, ends as flagged open."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and isinstance(value, (int, float)):  # (the same test: it tells the type checker too)
        ok = (value > low if above_low else value >= low) and (value < high if below_high else value <= high)
    if not ok:
        left, right = "(" if above_low else "[", ")" if below_high else "]"
        raise ValueError(
            f"{name} must be a finite number in {left}{low:g}, {high:g}{right}, not {show(value)}"
        )


def _one_line_text(name: str, value: object, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or any(c in value for c in "\0\n\r"):
        raise ValueError(f"{name} must be text on one line, not {show(value)}")


def check_ranges(s: TrainSettings) -> None:  # (settings checks the head's and augmentation's types first)
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
            f"not {show(s.preprocessing)}"
        )
    if s.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {show(s.optimizer)} (choose from {', '.join(OPTIMIZERS)})")
    if s.class_weights not in CLASS_WEIGHTS:
        raise ValueError(f"class_weights must be auto, balanced or none, not {show(s.class_weights)}")
    if s.small_folder_val not in SMALL_FOLDER_VAL:
        raise ValueError(f"small_folder_val must be train or keep, not {show(s.small_folder_val)}")
    if s.peft not in PEFT_MODES:
        raise ValueError(f"peft must be one of {', '.join(PEFT_MODES)}, not {show(s.peft)}")
    if s.probe_features not in PROBE_FEATURES:
        raise ValueError(f"probe_features must be {', '.join(PROBE_FEATURES)}, not {show(s.probe_features)}")
    if s.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {show(s.strategy)} (choose from {', '.join(STRATEGIES)})")
    if s.mixed_precision not in MIXED_PRECISION:
        raise ValueError(
            f"mixed_precision must be {', '.join(MIXED_PRECISION)}, not {show(s.mixed_precision)}"
        )
    if not isinstance(s.device, str) or not re.fullmatch(DEVICE_PATTERN, s.device):
        raise ValueError(
            f"device must be auto, cpu or gpu:N (N from `tlstudio devices`), not {show(s.device)}"
        )
    for name in ("auto_batch_size", "feature_cache", "calibrate", "interpolate"):
        if not isinstance(getattr(s, name), bool):
            raise ValueError(f"{name} must be true or false, not {show(getattr(s, name))}")
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
    _whole("soup_checkpoints", s.soup_checkpoints, 0, MAX_SOUP_CHECKPOINTS)
    fractions = (s.val_fraction, s.test_fraction)
    if (
        not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f < 1 for f in fractions)
        or sum(fractions) >= 0.9
    ):
        raise ValueError(
            "val_fraction and test_fraction must each be from 0 to below 1 and leave at least a tenth "
            f"of the images for training (they are {show(s.val_fraction)} and {show(s.test_fraction)})"
        )
    _check_head(s.head)
    _check_augmentation(s.augmentation)
    _check_freeze(s.freeze)


def _check_head(head: HeadSettings) -> None:
    if head.pooling not in ("avg", "max"):
        raise ValueError(f"the head's pooling must be avg or max, not {show(head.pooling)}")
    _real("the head's dropout", head.dropout, 0, 1, below_high=True)
    units = head.dense_units
    if not isinstance(units, tuple) or len(units) > MAX_DENSE_LAYERS:
        raise ValueError(
            f"head.dense_units must be a list of at most {MAX_DENSE_LAYERS} layers, not {show(units)}"
        )
    for n in units:
        _whole("head.dense_units (each layer's units)", n, 1, MAX_DENSE_UNITS)


def _check_augmentation(augmentation: Augmentation) -> None:
    if not isinstance(augmentation.flip, bool):
        raise ValueError(f"augmentation.flip must be true or false, not {show(augmentation.flip)}")
    _real("augmentation.rotation (a fraction of a full turn)", augmentation.rotation, 0, 1)
    _real("augmentation.zoom (a fraction)", augmentation.zoom, 0, 1, below_high=True)
    _real("augmentation.contrast (a factor)", augmentation.contrast, 0, 1)


def _check_freeze(plan: FreezePlan) -> None:
    """What ``FreezePlan`` itself does not check: finite numbers, layer names, per-block rates."""
    if not isinstance(plan, FreezePlan):
        raise ValueError(f"freeze must be a freeze plan, not {show(plan)}")
    if plan.preset == "top":
        _real("freeze.value (top:N blocks)", plan.value, 0, MAX_BLOCKS)
        if plan.value != int(plan.value):
            raise ValueError(f"freeze.value (top:N blocks) must be a whole number, not {show(plan.value)}")
    else:
        _real("freeze.value (first:P%)", plan.value, 0, 100)
    if not isinstance(plan.train_batchnorm, bool):
        raise ValueError(f"freeze.train_batchnorm must be true or false, not {show(plan.train_batchnorm)}")
    if not isinstance(plan.frozen_layers, frozenset) or not all(
        isinstance(name, str) and name for name in plan.frozen_layers
    ):
        raise ValueError(
            f"freeze.frozen_layers must be a list of layer names, not {show(plan.frozen_layers)}"
        )
    if plan.lr_decay is not None:
        _real("freeze.lr_decay", plan.lr_decay, 0, 1, above_low=True)
    if not isinstance(plan.block_lr, tuple):
        raise ValueError(
            f"freeze.block_lr must be a list of [block, multiplier] pairs, not {show(plan.block_lr)}"
        )
    seen = set()
    for pair in plan.block_lr:
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str) or not pair[0]:
            raise ValueError(
                f"freeze.block_lr must be [block name, multiplier] pairs, not {show(pair)} "
                '(e.g. [["block_6", 0.5]])'
            )
        _real(f"freeze.block_lr multiplier of {show(pair[0])}", pair[1], 0, MAX_BLOCK_LR, above_low=True)
        if pair[0] in seen:
            raise ValueError(f"freeze.block_lr names block {show(pair[0])} twice")
        seen.add(pair[0])


_SIMPLE = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_SIMPLE.update({name: (str,) for name in SETTINGS_TYPES})  # which string: ``check_ranges`` says
_NESTED = {"HeadSettings", "FreezePlan", "Augmentation"}


def check_fields(cls: type, data: dict, where: str) -> None:
    """Refuse unknown keys and values whose type does not match the dataclass field's."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        names = sorted(n if n.isprintable() and len(n) <= _SHOWN else show(n) for n in map(str, unknown))
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
            raise ValueError(f"{where}.{name} must be {annotation}, not {type(value).__name__} {show(value)}")
