"""Per-epoch figures as TensorBoard event files in ``RUN/tensorboard`` (``tf.summary``; the
``tensorboard`` package is needed only to look at them: ``tlstudio runs RUN --tensorboard``)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

# what tf.summary.scalar (which lives in the tensorboard package) marks its values with
_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


class ScalarLog:
    """A run's event file, opened at the first write (a worker of a cluster may move the run first)."""

    def __init__(self) -> None:
        self._writer = None

    def write(self, folder: Path, epoch: int, values: dict[str, float]) -> None:
        """Write one epoch's figures into ``folder``'s event file and flush it.

        Args:
            folder: ``RUN/tensorboard``.
            epoch: the step TensorBoard plots them at.
            values: name → figure.
        """
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(folder))
        with self._writer.as_default():
            for name, value in values.items():
                tf.summary.write(name, tf.constant(float(value), tf.float32), step=epoch, metadata=_SCALAR)
        self._writer.flush()
