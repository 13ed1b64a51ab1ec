"""Stop sooner while a phase's first batch runs.

Keras checks the stop flag between batches (``EventBridge``). The first batch of a phase is the slow
one: Keras traces the train step (Python, layer by layer; many seconds for a large backbone on a CPU)
before TensorFlow runs it, and a Stop pressed then used to wait for all of it. While a first batch
runs, ``FirstBatchInterrupt`` makes every Keras layer call in the training thread check the stop
flag first and raise ``StopRequested`` when it is set: the trace ends at the next layer it reaches,
as it would if that layer had raised an error of its own. Gradients, graph optimisation and the
step itself run in TensorFlow's C++ runtime and are not interrupted; Stop then acts when they end.

Written by hand, and how: Keras has no per-layer hook and TensorFlow no cancellation of a trace, so
``keras.layers.Layer.__call__`` is wrapped while any first batch runs (other threads pass straight
through). An exception raised in the thread from outside (``PyThreadState_SetAsyncExc``), tried
first, can land inside TensorFlow's C extension and broke one run in six with a ``SystemError``;
a layer call is Python called from Python, where an exception is an ordinary one.
"""

from __future__ import annotations

import functools
import threading

import keras

from tlstudio.core.training.callbacks import StopRequested

_lock = threading.Lock()
_armed: dict[int, FirstBatchInterrupt] = {}  # training thread -> its interrupt
_original_call = keras.layers.Layer.__call__


@functools.wraps(_original_call)
def _checked_call(self, *args, **kwargs):
    interrupt = _armed.get(threading.get_ident())
    if interrupt is not None and interrupt.stop.is_set():
        interrupt.fired = True
        raise StopRequested()
    return _original_call(self, *args, **kwargs)


class FirstBatchInterrupt:
    """While armed, a set ``stop`` ends the arming thread's next Keras layer call."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.fired = False
        self._thread: int | None = None

    def arm(self) -> None:
        """Check ``stop`` at every layer call of the calling thread (until ``disarm``)."""
        with _lock:
            self._thread = threading.get_ident()
            _armed[self._thread] = self
            keras.layers.Layer.__call__ = _checked_call

    def disarm(self) -> None:
        """Layer calls of this thread run unchecked again; the wrapper goes when no thread is armed."""
        with _lock:
            if self._thread is not None and _armed.get(self._thread) is self:
                del _armed[self._thread]
            self._thread = None
            if not _armed:
                keras.layers.Layer.__call__ = _original_call

    close = disarm

    @property
    def armed(self) -> bool:
        """Whether a stop would end the armed thread's next layer call."""
        return self._thread is not None


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
