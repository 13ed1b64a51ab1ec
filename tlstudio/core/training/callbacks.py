"""Keras callbacks of a training session: live events and the stop flag, and the atomic best checkpoint."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from tlstudio.core import events as ev

if TYPE_CHECKING:
    from tlstudio.core.training.run_state import RunState


class StopRequested(Exception):
    """Raised inside ``fit`` to end training at once when a stop was asked for."""


class EventBridge(keras.callbacks.Callback):
    """Turns Keras hooks into TL Studio events and checks the stop flag after every batch."""

    def __init__(self, session: RunState, phase: str, steps: int, batch_size: int, stop: threading.Event):
        super().__init__()
        self.session, self.phase, self.steps, self.batch_size = session, phase, steps, batch_size
        self.stop = stop
        self._epoch = 0
        self._epoch_start = self._last = time.perf_counter()
        self._rate = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        rate = self.batch_size / max(now - self._last, 1e-9)
        self._rate = rate if self._rate == 0 else 0.8 * self._rate + 0.2 * rate
        self._last = now
        record = {
            "phase": self.phase,
            "epoch": self._epoch,
            "step": batch + 1,
            "loss": float(logs.get("loss", math.nan)),
        }
        if "accuracy" in logs:
            record["accuracy"] = float(logs["accuracy"])
        self.session.history["batches"].append(record)
        self.session.emit(
            ev.BatchEnded(
                self.phase,
                self._epoch,
                batch + 1,
                self.steps,
                record["loss"],
                record.get("accuracy"),
                self._rate,
            )
        )
        if self.stop.is_set():
            raise StopRequested()

    def on_epoch_end(self, epoch, logs=None):
        metrics = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        seconds = time.perf_counter() - self._epoch_start
        self.session.history["epochs"].append(
            {"phase": self.phase, "epoch": epoch, **metrics, "learning_rate": lr, "seconds": seconds}
        )
        self.session.save_history()
        self.session.log_scalars(epoch, metrics | {"learning_rate": lr})
        self.session.emit(ev.EpochEnded(self.phase, epoch, metrics, lr, seconds))


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the weights whenever the monitored value improves, atomically (temp file + rename).

    Written by hand rather than with ``ModelCheckpoint`` so that a crash mid-write never leaves a
    broken file in place of the last good checkpoint.
    """

    def __init__(self, session: RunState, path: Path, monitor: str, best: float = math.inf):
        super().__init__()
        self.session, self.path, self.monitor, self.best = session, path, monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value < self.best:
            return
        self.best = float(value)
        self.session.save_checkpoint(epoch, self.monitor, self.best)


class LastCheckpoint(keras.callbacks.Callback):
    """After every epoch: the weights and the position in the recipe, for ``--resume``."""

    def __init__(self, session: RunState, state_at):
        super().__init__()
        self.session, self.state_at = session, state_at

    def on_epoch_end(self, epoch, logs=None):
        self.session.save_last(self.state_at(epoch))
