"""Train panel: hyperparameters with reasons, Start / Stop, progress with ETA, live curves."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core import events as ev
from tlstudio.core.results.headline import headline
from tlstudio.core.settings import TrainSettings
from tlstudio.core.training import gpu_monitor
from tlstudio.gui.curves import CurvesWidget
from tlstudio.gui.train_form import TrainForm
from tlstudio.gui.worker import Task, failure_line


def run_session(task: Task, settings: TrainSettings, data_dir: str, run_dir: Path, manifest, resume=False):
    """The worker's job: one training session (or the rest of an interrupted one), via the task."""
    from tlstudio.core.training.session import TrainingSession

    session = TrainingSession(
        settings,
        data_dir,
        run_dir,
        manifest=manifest,
        on_event=task.report,
        stop=task.stop_token,
        resume=resume,
    )
    return session.run()


def run_auto(task: Task, data_dir: str, run_dir: Path):
    """The worker's job for *Quick model*: ``core.training.auto`` (doctor, rank, recipe, exports); the
    run's result (what auto chose and gained is reported as the run's last message)."""
    from tlstudio.core.training.auto import auto

    result = auto(data_dir, run_dir, on_event=task.report, stop=task.stop_token)
    steps = "; ".join(
        f"after {s.step} {s.val_accuracy:.3f} [{s.interval[0]:.2f}–{s.interval[1]:.2f}]" for s in result.steps
    )
    exported = [e.name for e in result.exports if e.error is None]
    task.report(  # shown under the curves, where the run's own last word was
        ev.RecipeChanged(
            f"Quick model chose {Path(result.chosen).name} of {len(result.candidates)} candidate(s); "
            f"the run {result.run.status}. Validation: {steps or 'no validation split'}. Verified exports: "
            f"{', '.join(exported) or 'none'}. {result.seconds:.0f} s in all."
        )
    )
    return result.run


MESSAGE_HEIGHT = 130  # px: the run's message box; longer texts scroll inside it
LEFT_WIDTH = 400  # px: the settings column
SCROLLBAR_ROOM = 18  # px beside it for its vertical scroll bar


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area that gives it the area's width."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


class TrainPanel(QWidget):
    """Runs training in a worker thread; ``start_requested`` asks the window for data and settings."""

    start_requested = Signal()
    finished = Signal(object)  # RunResult
    ended = Signal()  # the session's thread is done, with a result or not (a crash)
    gpu_sampled = Signal(str)  # NVML's reading in words, from the sampler's thread

    def __init__(self, parent=None):
        super().__init__(parent)
        self.task: Task | None = None
        self._active = False
        self.events_seen = 0
        self._phase_end = 0
        self.run_dir: Path | None = None
        self._epoch_started = time.perf_counter()

        self.form = TrainForm()

        self.start = QPushButton("Start training")
        # the keys live on the window's Training menu only: one action per key (a second one would
        # make Qt call the pair an "ambiguous shortcut overload" and fire neither)
        self.start.setToolTip("Ctrl+Enter")
        self.start.clicked.connect(self.start_requested)
        self.stop = QPushButton("Stop")
        self.stop.setToolTip("Stops after the current batch and keeps the best weights so far (Ctrl+.)")
        self.stop.setEnabled(False)
        self.stop.clicked.connect(self.request_stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start)
        buttons.addWidget(self.stop)
        self.missing: list[str] = []
        self.readiness = QLabel("")  # what is missing before Start can be pressed
        self.readiness.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m steps")
        self.phase = QLabel("Not started.")
        self.speed = QLabel("")
        self.device = QLabel("Device: TensorFlow loading…")
        self.gpu_use = QLabel("")  # GPU utilisation and memory while a run trains (NVML)
        self.gpu_use.setToolTip("Read from NVML every second (nvidia-ml-py, the [gpu] extra)")
        self.gpu_sampled.connect(self.gpu_use.setText)
        self.sampler: gpu_monitor.Sampler | None = None
        self.message = QLabel("")
        for label in (
            self.phase,
            self.speed,
            self.device,
            self.gpu_use,
            self.message,
        ):  # long texts wrap, never widen
            label.setWordWrap(True)

        left = QVBoxLayout()
        left.addWidget(self.form)
        left.addLayout(buttons)
        left.addWidget(self.readiness)
        left.addWidget(self.phase)
        left.addWidget(self.progress)
        left.addWidget(self.speed)
        left.addWidget(self.device)
        left.addWidget(self.gpu_use)
        # a long message (a failed run's error and what to do) scrolls in a box of its own: as a plain
        # label it squeezed the settings above it to unreadable rows and cut itself off
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.message_area = scrolling(self.message)
        self.message_area.setMaximumHeight(MESSAGE_HEIGHT)
        self.message_area.setMinimumHeight(MESSAGE_HEIGHT // 3)
        self.form.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)  # readable rows
        left.addStretch(1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(LEFT_WIDTH)
        # the column scrolls where the screen is lower than it (a 768-px laptop): squeezed, its rows
        # became unreadable
        self.left_scroll = scrolling(left_widget)
        self.left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.left_scroll.setMinimumWidth(left_widget.minimumSizeHint().width() + SCROLLBAR_ROOM)
        self.left_scroll.setMaximumWidth(LEFT_WIDTH + SCROLLBAR_ROOM)
        self.curves = CurvesWidget(self)
        right = QVBoxLayout()  # the curves, and under them the run's message at their full width
        right.addWidget(self.curves, 1)
        right.addWidget(self.message_area)
        layout = QHBoxLayout(self)
        layout.addWidget(self.left_scroll)
        layout.addLayout(right, 1)

    def reset(self) -> None:
        """Nothing of a previous project's runs: curves, progress and messages cleared."""
        if self.is_running():
            return  # (the window refuses to replace a project while it trains)
        self.curves.clear()
        self.curves.redraw()
        self.events_seen = 0
        self.run_dir = None
        self.phase.setText("Not started.")
        self.speed.setText("")
        self.message.setText("")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    # -- settings ------------------------------------------------------------------------------------
    def apply_to(self, settings: TrainSettings) -> TrainSettings:
        """Settings with this panel's values (``TrainForm``); the rest kept as it was."""
        return self.form.apply_to(settings)

    def show_settings(self, s: TrainSettings) -> None:
        """Fill the form from settings (a loaded project)."""
        self.form.show_settings(s)

    # -- running -------------------------------------------------------------------------------------
    def run(
        self, settings: TrainSettings, data_dir: str, run_dir: Path, manifest=None, resume: bool = False
    ) -> None:
        """Start a training session in a worker thread (``resume``: continue the run in ``run_dir``)."""
        self._run_job(run_dir, lambda task: run_session(task, settings, data_dir, run_dir, manifest, resume))

    def run_quick_model(self, data_dir: str, run_dir: Path) -> None:
        """*Quick model*: the doctor, the backbones at hand ranked, the recipe, every export, in a worker."""
        self._run_job(run_dir, lambda task: run_auto(task, data_dir, run_dir))

    def _run_job(self, run_dir: Path, job) -> None:
        if self.is_running():
            return
        self.curves.clear()
        self.events_seen = 0
        self.message.setText(f"Run folder: {run_dir}")
        self.run_dir = Path(run_dir)
        self.task = Task(job, with_report=True)
        self.task.event.connect(self.on_event)
        self.task.done.connect(self._done)
        self.task.failed.connect(self._crashed)
        self.start.setEnabled(False)
        self.stop.setEnabled(True)
        self.phase.setText("Preparing data and model…")
        self._active = True
        self.task.start()
        self._start_sampler()

    def is_running(self) -> bool:
        """Whether a session is running, or its result has not been handled yet."""
        return self._active

    def request_stop(self) -> None:
        """Stop within a batch; the best weights are kept."""
        if self.task is not None and self._active:
            self.task.stop()
            self.stop.setEnabled(False)
            self.phase.setText(
                "Stopping (at the next layer while a phase's first batch is being built, else after this "
                "batch), then evaluating and exporting the best weights so far…"
            )

    def wait(self, ms: int = 120_000) -> bool:
        """Wait for the worker to end (used when closing)."""
        return self.task.wait(ms) if self.task is not None else True

    def on_event(self, event: ev.Event) -> None:
        """Handle a core event on the GUI thread (widgets only, no ML)."""
        self.events_seen += 1
        if isinstance(event, ev.RunStarted):
            self.device.setText(f"Device: {event.device}")
        elif isinstance(event, ev.PhaseStarted):
            self._phase_end = event.first_epoch + event.epochs
            self.speed.setText("")  # (the probe's "Fitting…" line belongs to the phase before)
            self.curves.add_phase(event.first_epoch, event.phase)
            self.phase.setText(
                f"Phase '{event.phase}': {event.description}, learning rate {event.learning_rate:g} — "
                + (
                    "cached backbone features (computed once)"
                    if event.uses_feature_cache
                    else "full pipeline"
                )
            )
            self.progress.setMaximum(event.steps_per_epoch)
        elif isinstance(event, ev.BatchEnded):
            self.progress.setFormat("%v / %m steps")
            if event.step == 1:
                self._epoch_started = time.perf_counter()
            self.curves.add_batch(event.epoch, event.step, event.steps, event.loss)
            self.progress.setMaximum(event.steps)
            self.progress.setValue(event.step)
            elapsed = time.perf_counter() - self._epoch_started
            eta = elapsed / event.step * (event.steps - event.step)
            self.speed.setText(
                f"Epoch {event.epoch + 1}/{self._phase_end} · loss {event.loss:.4f} · "
                f"{event.images_per_second:,.0f} images/s · epoch ends in {eta:.0f} s"
            )
        elif isinstance(event, ev.Working):  # features being computed, the probe being fitted
            self.speed.setText(f"{event.step[0].upper()}{event.step[1:]}…")
            self.progress.setFormat("%v / %m")
            self.progress.setMaximum(max(event.total, 1))
            self.progress.setValue(event.done)
        elif isinstance(event, ev.EpochEnded):
            self.curves.add_epoch(event.epoch, event.metrics, event.learning_rate)
        elif isinstance(event, ev.Finishing):
            self.phase.setText(f"Finishing: {event.step}…")
            self.speed.setText("")
            if event.total:
                self.progress.setFormat("%v / %m images")
                self.progress.setMaximum(event.total)
                self.progress.setValue(event.done)
            else:
                self.progress.setRange(0, 0)  # busy: a step that does not count
        elif isinstance(event, ev.FilesSkipped):
            self.message.setText(f"{len(event.files)} file(s) skipped (see the Data panel).")
        elif isinstance(event, (ev.RecipeChanged, ev.BatchSizeReduced)):
            reason = getattr(event, "reason", None) or (
                f"Out of memory at batch size {event.old}: starting again at {event.new}."
            )
            self.message.setText(reason)
        elif isinstance(event, ev.Souped):
            self.message.setText(
                f"Checkpoint soup skipped: {event.skipped}"
                if event.skipped
                else f"Checkpoint soup: {len(event.ingredients)} of the {event.kept} best epochs averaged "
                f"(validation loss {event.best_val_loss:.4f} → {event.val_loss:.4f})."
            )
        elif isinstance(event, ev.Interpolated):
            self.message.setText(
                f"WiSE-FT: α = {event.chosen:g} between the probe (0) and the fine-tuned weights (1), "
                "chosen on validation loss."
            )
        elif isinstance(event, ev.RunFailed):
            self.message.setText(
                f"<span style='color:#b00'><b>Run failed:</b> {event.error}</span><br>"
                f"What to do: {event.hint}"
            )
        elif isinstance(event, ev.RunFinished):
            text = f"Run {event.status}." + (f" {event.message}" if event.message else "")
            if event.status == "failed_to_learn":
                text = f"<span style='color:#b00'><b>{text}</b></span>"
            if event.metrics:
                text += f" {headline(event.metrics).capitalize()}."
            self.message.setText(text)

    def show_plan(self, plan) -> None:
        """The Layers panel's plan (see ``TrainForm.show_plan``)."""
        self.form.show_plan(plan)

    def set_missing(self, missing: list[str]) -> None:
        """What the window still needs before a run (empty: ready); Start waits for it."""
        self.missing = list(missing)
        self.start.setEnabled(not self.missing and not self.is_running())
        self.readiness.setText("Before training: " + "; ".join(self.missing) + "." if self.missing else "")

    def _start_sampler(self) -> None:
        """GPU utilisation and memory every second while a run trains (nothing without NVML)."""
        self._stop_sampler()
        self.sampler = gpu_monitor.Sampler(
            lambda samples: self.gpu_sampled.emit(gpu_monitor.describe(samples))
        )
        self.sampler.start()

    def _stop_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None

    def _done(self, result) -> None:
        self._active = False
        self._stop_sampler()
        self.progress.setRange(0, 1)
        self.progress.setFormat("%v / %m steps")
        self.start.setEnabled(not self.missing)
        self.stop.setEnabled(False)
        self.phase.setText(f"Finished: {result.status}.")
        self.curves.redraw()
        self.finished.emit(result)
        self.ended.emit()

    def _crashed(self, message: str) -> None:
        self._active = False
        self._stop_sampler()
        self.start.setEnabled(True)
        self.stop.setEnabled(False)
        self.message.setText(f"<span style='color:#b00'>{failure_line(message)}</span>")
        self.ended.emit()
