"""Failures of a run: the error type, the message and hint shown for any error, disk-space checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import tensorflow as tf

from tlstudio.core.backbone.registry import BackboneError
from tlstudio.core.training import distribution


class TrainingError(Exception):
    """A run that cannot start, with a message that says what to do."""


def weights_bytes(model) -> int:
    """The bytes of a model's weights (what a checkpoint of it takes, about)."""
    total = 0
    for w in model.weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n * 4
    return total


RESUME_ADVICE = "Free some space (or choose another --out) and resume or start again"


def need_free_space(folder: Path, needed: int, what: str, advice: str = RESUME_ADVICE) -> None:
    """Raise a TrainingError that says how much room is missing where, before a write that needs it,
    and what to do then (``advice``: resuming, unless that is not what helps)."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise TrainingError(
            f"not enough free disk space in {folder} for {what}: about {needed / 1e6:.1f} MB needed, "
            f"{free / 1e6:.1f} MB free. {advice}"
        )


def message_for(err: Exception) -> str:
    """Our own errors say what to do already; anything else is named by its type."""
    if isinstance(err, (TrainingError, BackboneError, distribution.MultiWorkerError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def hint_for(err: Exception) -> str:
    text = str(err).lower()
    if isinstance(err, tf.errors.ResourceExhaustedError) or "out of memory" in text or "oom" in text:
        return "out of memory: lower the batch size or the image size, or freeze more of the backbone"
    if isinstance(err, distribution.MultiWorkerError):
        return "fix TF_CONFIG or the data on every worker and start all workers again"
    if isinstance(err, BackboneError):
        return "check the backbone name, its weights, or the model file"
    if isinstance(err, TrainingError):
        return "fix the data or the settings named above and start again"
    return "see error.txt in the run folder for the full traceback; the best checkpoint so far is kept"
