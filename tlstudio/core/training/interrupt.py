"""Stop at once while a phase's first batch runs.

Keras checks the stop flag between batches (``EventBridge``). The first batch of a phase is the slow
one: Keras traces the train step (Python, layer by layer; many seconds for a large backbone on a CPU)
before TensorFlow runs it, and a Stop pressed then used to wait 15–20 s. While a first batch runs,
``FirstBatchInterrupt`` watches the stop flag from a small thread and, when it is set, raises
``StopRequested`` in the training thread itself (``PyThreadState_SetAsyncExc``, the one way Python
offers to interrupt another thread): tracing is Python code, so it ends within milliseconds; a call
into TensorFlow's C++ runtime ends first, then the exception fires. After the first batch the
watcher is disarmed, and any exception it had raised but Python had not yet delivered is cleared, so
nothing can interrupt a checkpoint being written: from then on Stop acts at the next batch end.

Written by hand: Keras has no interruptible train step, and TensorFlow no cancellation of a trace.
"""

from __future__ import annotations

import ctypes
import threading

import keras

from tlstudio.core.training.callbacks import StopRequested

_POLL_S = 0.05


class FirstBatchInterrupt:
    """Raise ``StopRequested`` in the arming thread as soon as ``stop`` is set, while armed."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self._lock = threading.Lock()
        self._armed_thread: int | None = None
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None
        self.fired = False

    def arm(self) -> None:
        """Interrupt the calling thread when a stop is asked for (until ``disarm``)."""
        with self._lock:
            self._armed_thread = threading.get_ident()
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="tlstudio-stop-watcher", daemon=True)
            self._watcher.start()

    def disarm(self) -> None:
        """No more interruptions; one raised but not yet delivered is cancelled."""
        with self._lock:
            thread, self._armed_thread = self._armed_thread, None
            if thread is not None and self.fired:  # (a no-op when it was delivered already)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), None)

    def close(self) -> None:
        """Disarm and end the watcher thread."""
        self.disarm()
        self._closed.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None

    def _watch(self) -> None:
        while not self._closed.is_set():
            if not self.stop.wait(_POLL_S):
                continue
            with self._lock:
                if self._armed_thread is not None:
                    exc = ctypes.py_object(StopRequested)
                    thread = ctypes.c_ulong(self._armed_thread)
                    self.fired = ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, exc) == 1
                    return  # once is enough: the run is stopping
            self._closed.wait(_POLL_S)


class StopDuringFirstBatch(keras.callbacks.Callback):
    """Arms a ``FirstBatchInterrupt`` from the start of ``fit`` to the end of its first batch, and
    again for the first validation batch (its step is traced then too). The caller closes
    ``interrupt`` when ``fit`` returns or raises (Keras skips ``on_train_end`` on an exception)."""

    def __init__(self, stop: threading.Event):
        super().__init__()
        self.interrupt = FirstBatchInterrupt(stop)
        self._validated = False

    def on_train_begin(self, logs=None):
        self.interrupt.arm()

    def on_train_batch_end(self, batch, logs=None):
        self.interrupt.disarm()

    def on_test_begin(self, logs=None):
        if not self._validated:
            self.interrupt.arm()

    def on_test_batch_end(self, batch, logs=None):
        if not self._validated:
            self._validated = True
            self.interrupt.disarm()

    def on_test_end(self, logs=None):  # (a validation set that gave no batch ends here too)
        self._validated = True
        self.interrupt.disarm()

    def on_epoch_end(self, epoch, logs=None):  # first in the list: before any checkpoint is written
        self.interrupt.disarm()
