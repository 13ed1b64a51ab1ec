"""Stop during a phase's slow first batch (tracing): it acts at the next layer call, and only then."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tlstudio.core.settings import Augmentation, TrainSettings
from tlstudio.core.training.callbacks import StopRequested
from tlstudio.core.training.interrupt import FirstBatchInterrupt
from tlstudio.core.training.session import TrainingSession

BUSY_S = 60.0  # the "first batch": Python work that would run this long without the interrupt


def busy(seconds: float) -> float:
    """Python work (as tracing is) for ``seconds``; returns how long it ran."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sum(range(100))
    return time.perf_counter() - start


def test_an_armed_thread_stops_at_its_next_layer_call_and_no_other_thread_does():
    import keras
    import numpy as np

    layer = keras.layers.Dense(2)
    x = np.zeros((1, 3), np.float32)
    original = keras.layers.Layer.__call__
    stop = threading.Event()
    interrupt = FirstBatchInterrupt(stop)
    interrupt.arm()
    layer(x)  # no stop yet: the call runs
    stop.set()
    other: list[object] = []
    elsewhere = threading.Thread(target=lambda: other.append(layer(x)))
    elsewhere.start()
    elsewhere.join()
    assert len(other) == 1  # another thread (the GUI's, say) is not stopped
    with pytest.raises(StopRequested):
        layer(x)
    assert interrupt.fired
    interrupt.disarm()
    layer(x)  # the first batch is over: a stop now waits for the batch end
    assert keras.layers.Layer.__call__ is original  # nothing armed: Keras as it was


def test_stop_during_a_slow_first_fine_tuning_batch_ends_the_run_at_once_with_the_probe_kept(
    colour_data, tiny_backbone_file, tmp_path, monkeypatch
):
    import keras

    from tlstudio.core.backbone.classifier import TransferModel

    keras_call = keras.layers.Layer.__call__
    stop = threading.Event()
    asked: list[float] = []
    original = TransferModel.train_step

    def slow_to_trace(self, data):  # called while Keras traces the fine-tuning step
        stop.set()
        asked.append(time.perf_counter())
        result = original(self, data)  # the model's layers: the first one stops the trace
        busy(BUSY_S)  # (the rest of a slow trace, never reached)
        return result

    monkeypatch.setattr(TransferModel, "train_step", slow_to_trace)
    settings = TrainSettings(
        backbone=str(tiny_backbone_file), batch_size=8, augmentation=Augmentation(False, 0.0)
    )
    result = TrainingSession(settings, colour_data, tmp_path / "run", stop=stop).run()
    assert asked and result.status == "stopped", result.error
    assert time.perf_counter() - asked[0] < BUSY_S / 2  # evaluation and export included
    assert (tmp_path / "run" / "saved_model").is_dir()  # the probe's best weights, exported
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "stopped"
    assert keras.layers.Layer.__call__ is keras_call  # the layer-call check is gone with the batch


def test_the_interrupt_is_disarmed_after_validation_and_every_epoch_whatever_the_batches():
    from tlstudio.core.training.interrupt import StopDuringFirstBatch

    guard = StopDuringFirstBatch(threading.Event())
    guard.on_train_begin()
    guard.on_test_begin()  # a validation set that gives no batch: no on_test_batch_end
    guard.on_test_end()
    assert not guard.interrupt.armed
    guard.interrupt.arm()
    guard.on_epoch_end(0)  # before any checkpoint callback runs
    assert not guard.interrupt.armed
    guard.interrupt.close()
