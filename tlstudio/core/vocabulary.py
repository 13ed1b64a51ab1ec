"""The named vocabularies of settings and runs as ``Literal`` types, each tuple of values read from its
type (``typing.get_args``), so the type checker and the checks at run time share one list."""

from __future__ import annotations

from typing import Literal, get_args

Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
ClassWeights = Literal["auto", "balanced", "none"]  # auto: balanced when imbalanced past 5:1
Strategy = Literal["default", "mirrored", "multiworker"]  # one device, every local GPU, several machines
MixedPrecision = Literal["auto", "on", "off"]  # auto: on for GPUs with compute capability ≥ 7.0
Preprocessing = Literal["none", "unit", "tf", "caffe", "torch"]  # backbone/preprocessing.py's modes
SmallFolderVal = Literal["train", "keep"]  # a small folder's validation images: train too, or held out
Peft = Literal["none", "lora", "bitfit"]  # the fine-tune phase: whole blocks, LoRA adapters, or biases/norms
ProbeFeatures = Literal["auto", "last", "last4"]  # last4: DINOv2's class tokens of the last 4 blocks
# what a run's run.json and a project's list say of it; "interrupted": the app closed during it
RunStatus = Literal["running", "completed", "stopped", "failed", "failed_to_learn", "interrupted"]

OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
CLASS_WEIGHTS: tuple[ClassWeights, ...] = get_args(ClassWeights)
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
MIXED_PRECISION: tuple[MixedPrecision, ...] = get_args(MixedPrecision)
PREPROCESSING: tuple[Preprocessing, ...] = get_args(Preprocessing)
SMALL_FOLDER_VAL: tuple[SmallFolderVal, ...] = get_args(SmallFolderVal)
PEFT_MODES: tuple[Peft, ...] = get_args(Peft)
PROBE_FEATURES: tuple[ProbeFeatures, ...] = get_args(ProbeFeatures)
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)

# the settings fields typed by a vocabulary: their values are strings (``settings_checks.check_fields``)
SETTINGS_TYPES = (
    "Optimizer",
    "ClassWeights",
    "Strategy",
    "MixedPrecision",
    "Preprocessing",
    "SmallFolderVal",
    "Peft",
    "ProbeFeatures",
)
