"""Per-epoch figures as TensorBoard event files in Keras' layout (``RUN/tensorboard/train/`` and
``validation/``, tags ``epoch_<name>``), and the run's settings and final figures as an HParams session
(``tf.summary``; the ``tensorboard`` package is needed for the HParams and to look at them:
``tlstudio runs RUN --tensorboard``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

# what tf.summary.scalar (which lives in the tensorboard package) marks its values with
_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)
TRAIN, VALIDATION = "train", "validation"  # keras.callbacks.TensorBoard's sub-folders
VALIDATION_PREFIX = "val_"  # a figure of the validation split, as Keras' logs name it


def split_figures(values: dict[str, float]) -> dict[str, dict[str, float]]:
    """One epoch's figures as Keras' TensorBoard callback files them: ``{"train": {"epoch_loss": …},
    "validation": {"epoch_loss": …}}`` (the ``val_`` prefix dropped; the learning rate is training's)."""
    parts: dict[str, dict[str, float]] = {TRAIN: {}, VALIDATION: {}}
    for name, value in values.items():
        if name.startswith(VALIDATION_PREFIX):
            parts[VALIDATION][f"epoch_{name[len(VALIDATION_PREFIX) :]}"] = value
        else:
            parts[TRAIN][f"epoch_{name}"] = value
    return parts


class ScalarLog:
    """A run's event files, opened at the first write (a worker of a cluster may move the run first)."""

    def __init__(self) -> None:
        self._writers: dict[str, Any] = {}

    def _writer(self, folder: Path) -> Any:
        if str(folder) not in self._writers:
            self._writers[str(folder)] = tf.summary.create_file_writer(str(folder))
        return self._writers[str(folder)]

    def write(self, folder: Path, epoch: int, values: dict[str, float]) -> None:
        """Write one epoch's figures into ``folder/train`` and ``folder/validation`` and flush them.

        Args:
            folder: ``RUN/tensorboard``.
            epoch: the step TensorBoard plots them at.
            values: name → figure, as Keras' logs name them (``loss``, ``val_accuracy``, ``learning_rate``).
        """
        for part, figures in split_figures(values).items():
            if not figures:
                continue
            writer = self._writer(folder / part)
            with writer.as_default():
                for name, value in figures.items():
                    _scalar(name, value, epoch)
            writer.flush()

    def write_outcome(
        self, folder: Path, settings: dict[str, Any], metrics: dict[str, Any], step: int
    ) -> bool:
        """The run as an HParams session in ``folder``: its settings as hyperparameters, its final
        figures (test and best validation scores) as scalars there, beside the per-epoch curves.

        Args:
            folder: ``RUN/tensorboard``.
            settings: the run's settings (``TrainSettings.to_dict()``), flattened to dotted names.
            metrics: the run's final figures (``metrics.json``); any that is not a finite number is left out.
            step: the step they are written at (the last epoch).

        Returns:
            Whether it was written: the HParams summary needs the ``tensorboard`` package.
        """
        try:
            from tensorboard.plugins.hparams import api as hp
        except ImportError:
            return False
        writer = self._writer(folder)
        with writer.as_default():
            hp.hparams(flat_hparams(settings), trial_id=folder.parent.name)
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    _scalar(name, value, step)
        writer.flush()
        return True

    def close(self) -> None:
        """Close every event file (the run has ended)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _scalar(name: str, value: float, step: int) -> None:
    """One scalar into the default writer, as ``tf.summary.scalar`` would write it."""
    tf.summary.write(name, tf.constant(float(value), tf.float32), step=step, metadata=_SCALAR)


def flat_hparams(settings: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested settings as HParams values by dotted name (``head.dropout``); lists and None as JSON text.

    Example:
        >>> flat_hparams({"epochs": 20, "head": {"dropout": 0.2, "dense_units": []}, "image_size": None})
        {'epochs': 20, 'head.dropout': 0.2, 'head.dense_units': '[]', 'image_size': 'null'}
    """
    out: dict[str, bool | int | float | str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out
