"""Run core work off the GUI thread: a plain callable, or a training session with live events.

Core code reports through plain callbacks; here those become Qt signals. A ``Task`` lives on the
GUI thread; its ``_Runner`` lives on a worker ``QThread``. The runner's signals are connected to the
task's, so they cross threads as queued connections and the task re-emits them on the GUI thread —
which is where anything connected to a task (lambdas included) runs, and widgets are only ever
touched there.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
import warnings
import weakref
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal


class TaskFailure(str):
    """What a failed task sends: the message as text (type, words, traceback), with the exception itself.

    It is a ``str`` so a slot that shows text keeps working; a slot that decides something reads
    ``error`` (the exception object: ``isinstance(failure.error, Cancelled)``), ``reason`` (the
    first line of the error's own words) or ``headline`` (the same with the exception's type).
    """

    error: BaseException
    reason: str
    headline: str

    @classmethod
    def of(cls, err: BaseException, trace: str = "") -> TaskFailure:
        """The failure for ``err`` (``trace``: its formatted traceback, shown under the words)."""
        words = str(err)
        failure = cls(f"{type(err).__name__}: {words}" + (f"\n\n{trace}" if trace else ""))
        failure.error = err
        first = words.strip().splitlines()[0] if words.strip() else ""
        failure.reason = first or type(err).__name__
        failure.headline = f"{type(err).__name__}: {first}" if first else type(err).__name__
        return failure

    @property
    def cancelled(self) -> bool:
        """Whether the work stopped because it was asked to (``core.cancel.Cancelled``)."""
        from tlstudio.core.cancel import Cancelled

        return isinstance(self.error, Cancelled)


class _Runner(QObject):
    done = Signal(object)
    failed = Signal(object)  # a TaskFailure
    event = Signal(object)

    def __init__(self, fn: Callable[[], object]):
        super().__init__()
        self.fn = fn

    def run(self) -> None:
        try:
            if _TENSORFLOW_LOADED.is_set():
                result = self.fn()
            else:  # importing TensorFlow from two threads at once breaks it: one job at a time until then
                with _ONE_AT_A_TIME:
                    result = self.fn()
        except Exception as err:  # shown in the window, never lost in a terminal
            self.failed.emit(TaskFailure.of(err, traceback.format_exc(limit=4)))
        else:
            self.done.emit(result)
        finally:
            self.thread().quit()


def reason(message: str) -> str:
    """A ``failed`` message's words without its exception's type: the error's own words.

    Args:
        message: as ``Task.failed`` sends it (a ``TaskFailure``; a plain "Type: words" string too).

    Returns:
        The exception's message, first line only for a plain string ("" for an empty one).
    """
    if isinstance(message, TaskFailure):
        return message.reason
    return message.splitlines()[0].split(": ", 1)[-1] if message else ""


def was_cancelled(message: str) -> bool:
    """Whether a ``failed`` message says the work stopped on request (``core.cancel.Cancelled``).

    Args:
        message: as ``Task.failed`` sends it.
    """
    return isinstance(message, TaskFailure) and message.cancelled


def failure_line(message: str) -> str:
    """A ``failed`` message in one line for a status bar ("Type: first line of the words").

    Args:
        message: as ``Task.failed`` sends it.

    Returns:
        Its first line.
    """
    if isinstance(message, TaskFailure):
        return message.headline
    return message.splitlines()[0] if message else ""


_TENSORFLOW_LOADED = threading.Event()
_ONE_AT_A_TIME = threading.Lock()


def tensorflow_loaded() -> None:
    """Called once TensorFlow is fully imported: from then on, tasks run side by side."""
    _TENSORFLOW_LOADED.set()


_RETIRED: set[Task] = set()  # tasks dropped while running, kept alive until their thread ends
_ALL: weakref.WeakSet[Task] = weakref.WeakSet()  # every task made, to find one still running


def running_tasks() -> list[Task]:
    """Tasks whose thread is still running (tests check that none is left behind)."""
    return [task for task in list(_ALL) if task.is_running()]


class Task(QObject):
    """Runs ``fn()`` (or ``fn(task)`` with ``with_report``) in its own QThread.

    Signals, all delivered on the GUI thread: ``done(result)``, ``failed(message)``, and
    ``event(obj)`` for whatever the function passes to ``task.report``.
    """

    done = Signal(object)
    failed = Signal(object)  # a TaskFailure (a str with the exception object)
    event = Signal(object)

    def __init__(
        self, fn: Callable[..., object], *, with_report: bool = False, parent: QObject | None = None
    ):
        super().__init__(parent)
        self.stop_token = threading.Event()
        self.thread = QThread()
        self.thread.setObjectName("tlstudio-task")
        self._runner = _Runner((lambda: fn(self)) if with_report else fn)
        self._runner.moveToThread(self.thread)
        self._runner.done.connect(self.done)
        self._runner.failed.connect(self.failed)
        self._runner.event.connect(self.event)
        self.thread.started.connect(self._runner.run)
        _ALL.add(self)

    def report(self, event: object) -> None:
        """Call from the worker thread; ``event`` is emitted on the GUI thread."""
        self._runner.event.emit(event)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def stop(self) -> None:
        """Ask the work to stop (it checks ``stop_token``)."""
        self.stop_token.set()

    def wait(self, ms: int = 60_000) -> bool:
        """Block until the thread ended."""
        return self.thread.wait(ms)

    def is_running(self) -> bool:
        """Whether the thread is still running."""
        return self.thread.isRunning()

    def retire(self) -> None:
        """Drop this task for a newer one: it is asked to stop, nothing it reports reaches its
        owner any more, and it is kept alive until its thread ends (a QThread destroyed while
        running aborts the whole app)."""
        self.stop()
        for signal in (self.done, self.failed, self.event):
            with contextlib.suppress(RuntimeError, TypeError), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # PySide warns when nothing was connected
                signal.disconnect()
        if self.is_running():
            _RETIRED.add(self)
            self.thread.finished.connect(lambda: _RETIRED.discard(self))
            if self.thread.isFinished():  # it ended in between: its finished signal came and went
                _RETIRED.discard(self)
