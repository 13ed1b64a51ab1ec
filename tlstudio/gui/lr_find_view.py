"""The Train panel's *Find learning rate…* dialog: the learning-rate finder of ``tlstudio lr-find``
(``core.training.lr_find``) in a worker, with a progress bar that says the step in words, Cancel,
the loss-versus-rate curve on a log axis and the suggested rate.

The finder measures the fine-tune phase (the top blocks unfrozen after the linear probe), whose rate
is the *Learning rate* setting times ``fine_tune_lr_factor``. *Use this learning rate* emits
``rate_chosen(learning_rate)``: the setting's value that gives the suggested fine-tune rate. Nothing
changes until that button is pressed.

Like the Backbone panel's rank view, the dialog reads what it needs through callables the window
sets: ``settings_source()`` (the project's TrainSettings with every panel's values),
``report_source()`` (the scanned data folder, or None) and ``waiting_for()`` (why it cannot start
yet, "" when it can). Until ``settings_source`` is set, the dialog is not connected (``connected``
says when it is).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from tlstudio.core import events as ev
from tlstudio.core.training.recipe import is_one_phase
from tlstudio.gui.lr_find_curve import CURVE_SIZE, CurveLabel, draw_curve
from tlstudio.gui.worker import Task, reason
from tlstudio.gui.working import show_working

if TYPE_CHECKING:
    from tlstudio.core.data.health import DatasetReport
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.lr_find import LrFindResult

DEFAULT_STEPS = 100  # as `tlstudio lr-find`
INTRO = (
    "Sweeps the fine-tune phase's learning rate from 1e-7 to 1 over the chosen number of training "
    "steps (after fitting the linear probe, as training does) and suggests the rate where the loss "
    "falls fastest. Nothing is trained for keeps."
)


def lr_find_job(
    settings: TrainSettings,
    report: DatasetReport,
    steps: int,
    stop: threading.Event,
    on_event: Callable[[ev.Working], None],
    size: tuple[int, int],
    colors: tuple[str, str],
) -> tuple[LrFindResult, QImage]:
    """Worker job: the finder on the training split the app's runs use (made from the scan with the
    settings' fractions and seed), and its curve drawn."""
    from tlstudio.core.data.split import SplitConfig, make_split
    from tlstudio.core.training.lr_find import find_learning_rate

    on_event(ev.Working("splitting the data and building the model"))
    multi = getattr(report, "task", "") == "multi_label"  # (a sigmoid head: binary cross-entropy)
    manifest = make_split(report.images, SplitConfig.of(settings), multi_label=multi)
    result = find_learning_rate(
        settings, report.root, manifest=manifest, steps=steps, stop=stop, on_event=on_event
    )
    on_event(ev.Working("drawing the curve"))
    return result, draw_curve(result, size, colors)


def not_measured(settings: TrainSettings) -> str:
    """Why these settings have no fine-tune phase for the finder to measure ("" when they have)."""
    if settings.weights == "none":
        return (
            "These settings train from random weights, in one phase at the learning rate itself: the "
            "finder measures the fine-tune phase of a pretrained backbone."
        )
    if is_one_phase(settings.freeze):
        return (
            "Your freeze plan (Layers panel) trains in one phase: the finder measures the recipe's "
            "fine-tune phase. Choose 'Feature extraction' there to use it."
        )
    if settings.fine_tune_epochs == 0 or settings.fine_tune_blocks <= 0:
        return (
            "Fine-tuning is off: the finder measures the fine-tune phase. Tick 'Then fine-tune top "
            "blocks' first."
        )
    return ""


class LrFindView(QDialog):
    """The finder: steps, Find / Cancel, progress, curve, suggestion, *Use this learning rate*.

    Signals: ``rate_chosen(learning_rate)`` when the user applies the suggestion (the *Learning
    rate* setting's value); ``connected(bool)`` when ``settings_source`` is set (or unset).
    """

    rate_chosen = Signal(float)
    connected = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Find a learning rate")
        self._settings_source: Callable[[], TrainSettings] | None = None
        self.report_source: Callable[[], DatasetReport | None] = lambda: None
        self.waiting_for: Callable[[], str] = lambda: ""
        self.task: Task | None = None
        self.result: LrFindResult | None = None
        self.chosen: float | None = None  # the learning-rate setting the suggestion gives
        self.cancelled = False
        self._retired = False
        self._stop = threading.Event()
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.steps = QSpinBox(minimum=5, maximum=1000, value=DEFAULT_STEPS)
        self.steps.setToolTip("Rates tried, one training step each: more steps, a smoother curve")
        self.run_button = QPushButton("Find learning rate")
        self.run_button.clicked.connect(self.run)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stops at the next batch; what was measured is shown")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.stop)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.step = QLabel("")
        self.step.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.curve = CurveLabel()
        self.suggestion = QLabel("")
        self.suggestion.setWordWrap(True)
        self.suggestion.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.use_button = QPushButton("Use this learning rate")
        self.use_button.setToolTip(
            "Set the Train panel's Learning rate to the suggestion (nothing changes before)"
        )
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.use_suggestion)
        close = QPushButton("Close")
        close.clicked.connect(self.hide)
        form = QFormLayout()
        form.addRow("Steps", self.steps)
        top = QHBoxLayout()
        top.addLayout(form)
        top.addStretch(1)
        top.addWidget(self.run_button)
        top.addWidget(self.cancel)
        bottom = QHBoxLayout()
        bottom.addWidget(self.use_button)
        bottom.addStretch(1)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.step)
        layout.addWidget(self.progress)
        layout.addWidget(self.curve, 1)
        layout.addWidget(self.suggestion)
        layout.addLayout(bottom)
        self.resize(640, 560)
        self._show_running(False)

    @property
    def settings_source(self) -> Callable[[], TrainSettings] | None:
        """The project's settings with every panel's values (None: not connected yet)."""
        return self._settings_source

    @settings_source.setter
    def settings_source(self, source: Callable[[], TrainSettings] | None) -> None:
        self._settings_source = source
        self.connected.emit(source is not None)

    def not_ready(self) -> str:
        """Why the finder cannot start now, in words ("" when it can)."""
        if self._settings_source is None:
            return "Not ready: no project is connected to the finder yet."
        report = self.report_source()
        if report is None or not getattr(report, "usable", False):
            return "Choose a usable data folder first (Data panel)."
        if why := self.waiting_for():
            return why
        return not_measured(self._settings_source())

    def open_finder(self) -> None:
        """Show the dialog (raised if already open), saying whether it can start."""
        self.refresh()
        self.show()
        self.raise_()
        self.activateWindow()

    def refresh(self) -> None:
        """The status line and the Find button follow readiness (not while a sweep runs)."""
        if self.is_running():
            return
        why = self.not_ready()
        self.run_button.setEnabled(not why)
        if why:
            self.status.setText(f"<b>{why}</b>")
        elif self.result is None:
            self.status.setText("Ready.")

    def is_running(self) -> bool:
        """Whether a sweep is under way."""
        return self.task is not None and self.task.is_running() and not self._retired

    def run(self) -> None:
        """Start the sweep in a worker with the current settings and data."""
        if self.is_running():
            return
        if self.not_ready():
            self.refresh()
            return
        settings, report = self._settings_source(), self.report_source()
        steps = self.steps.value()
        self._stop = threading.Event()
        self._retired = False
        self.cancelled = False
        stop = self._stop
        self.result, self.chosen = None, None
        self.curve.clear()
        self.suggestion.setText("")
        self.use_button.setEnabled(False)
        size = (self.curve.width(), self.curve.height()) if self.isVisible() else CURVE_SIZE
        colors = self.curve.colors()
        self.task = Task(
            lambda task: lr_find_job(settings, report, steps, stop, task.report, size, colors),
            with_report=True,
        )
        self.task.event.connect(self._progress)
        factor = settings.fine_tune_lr_factor
        self.task.done.connect(lambda found: self.show_result(*found, factor=factor))
        self.task.failed.connect(self._failed)
        self.status.setText(f"Finding a fine-tune learning rate for {settings.backbone} ({steps} steps)…")
        self.step.setText("Starting…")
        self.progress.setRange(0, 0)
        self._show_running(True)
        self.task.start()

    def stop(self) -> None:
        """Cancel the sweep at its next batch; said at once."""
        self._stop.set()
        if self.is_running():
            self.cancelled = True
            self.cancel.setEnabled(False)
            self.step.setText("Cancelling (at the next batch)…")

    def reset(self) -> None:
        """Nothing of another project: a sweep under way is stopped and dropped, the curve cleared."""
        if self.task is not None and self.task.is_running() and not self._retired:
            self._stop.set()
            self.task.retire()  # (kept in ``task`` until it ends, so the window can wait for it)
            self._retired = True
        self.result, self.chosen, self.cancelled = None, None, False
        self.curve.clear()
        self.suggestion.setText("")
        self.use_button.setEnabled(False)
        self.status.setText("")
        self._show_running(False)
        self.refresh()

    def _progress(self, event) -> None:
        if isinstance(event, ev.Working) and not self._stop.is_set():
            show_working(event, self.step, self.progress)

    def show_result(self, result: LrFindResult, image: QImage, factor: float = 0.1) -> None:
        """The curve and the suggestion; *Use this learning rate* is offered when there is one.

        Args:
            result: the finder's.
            image: its curve, drawn.
            factor: the fine-tune phase's rate over the Learning rate setting (the settings').
        """
        self.result = result
        self.curve.show_image(result, image)
        measured = len(result.rates)
        prefix = f"Cancelled after {measured} rate(s). " if self.cancelled else ""
        if result.suggestion is None:
            self.chosen = None
            self.suggestion.setText(
                prefix
                + (
                    f"Too few rates measured ({measured}) for a suggestion: "
                    + ("run it to the end." if self.cancelled else "try more steps.")
                )
            )
            self.use_button.setEnabled(False)
        else:
            self.chosen = result.suggestion / factor
            self.suggestion.setText(
                prefix
                + ("From this partial sweep: " if self.cancelled else "")
                + f"suggested fine-tune rate <b>{result.suggestion:.2e}</b> (valley at {result.valley:.2e}, "
                f"lowest loss at {result.minimum:.2e}). Phase 2 runs at {factor:g}× the Learning rate "
                f"setting, so <i>Use this learning rate</i> sets it to <b>{self.chosen:.2e}</b>."
            )
            self.use_button.setEnabled(True)
        self.status.setText("Done." if not self.cancelled else "Cancelled.")
        self._show_running(False)
        self.run_button.setEnabled(not self.not_ready())

    def use_suggestion(self) -> None:
        """Apply the suggestion: ``rate_chosen`` with the Learning rate setting's value."""
        if self.chosen is None:
            return
        self.status.setText(f"Applying learning rate {self.chosen:.2e}…")
        self.rate_chosen.emit(self.chosen)

    def applied(self, value: float) -> None:
        """Told by whoever applied the suggestion: the value the setting now holds."""
        self.status.setText(f"Learning rate set to {value:g}.")

    def _failed(self, message: str) -> None:
        self.status.setText(f"<span style='color:#b00'>{reason(message) or 'failed'}</span>")
        self._show_running(False)
        self.run_button.setEnabled(not self.not_ready())

    def _show_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel.setEnabled(running)
        self.steps.setEnabled(not running)
        self.step.setVisible(running)
        self.progress.setVisible(running)
        if not running:
            self.step.setText("")
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
