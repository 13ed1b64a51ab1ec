"""Train panel: hyperparameters with reasons, Start / Stop, progress with ETA, live curves."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core import events as ev
from tlstudio.core.results.metrics import headline
from tlstudio.core.settings import OPTIMIZERS, TrainSettings, defaults
from tlstudio.core.training.recipe import is_one_phase
from tlstudio.gui.curves import CurvesWidget
from tlstudio.gui.worker import Task

FINE_TUNE_TIP = (
    "Phase 2: unfreeze the top blocks at a 10× lower learning rate — the step that adapts pretrained "
    "features to your images"
)


def run_session(task: Task, settings: TrainSettings, data_dir: str, run_dir: Path, manifest, resume=False):
    """The worker's job: one training session (or the rest of an interrupted one), via the task."""
    from tlstudio.core.training.session import TrainingSession

    session = TrainingSession(
        settings,
        data_dir,
        run_dir,
        manifest=manifest,
        on_event=task.report,
        stop_event=task.stop_event,
        resume=resume,
    )
    return session.run()


class TrainPanel(QWidget):
    """Runs training in a worker thread; ``start_requested`` asks the window for data and settings."""

    start_requested = Signal()
    finished = Signal(object)  # RunResult

    def __init__(self, parent=None):
        super().__init__(parent)
        self.task: Task | None = None
        self._active = False
        self.events_seen = 0
        self._phase_end = 0
        self.run_dir: Path | None = None
        self._epoch_started = time.perf_counter()

        def spin(lo, hi, value, tip):
            box = QSpinBox(minimum=lo, maximum=hi, value=value)
            box.setToolTip(tip)
            return box

        def check(text, tip, checked=False):
            box = QCheckBox(text, checked=checked)
            box.setToolTip(tip)
            return box

        def real(lo, hi, value, step, decimals, tip):
            box = QDoubleSpinBox(decimals=decimals)  # decimals first: a value set before is rounded
            box.setRange(lo, hi)
            box.setSingleStep(step)
            box.setValue(value)
            box.setToolTip(tip)
            return box

        d = defaults()  # every widget starts at the settings' own default

        self.epochs = spin(
            1,
            1000,
            d.epochs,
            "Phase 1: the new head learns on the frozen backbone. Early stopping "
            "ends it when validation loss stops improving",
        )
        self.fine_tune = check(
            "Then fine-tune top blocks",
            FINE_TUNE_TIP,
            checked=d.fine_tune_epochs != 0,
        )
        self.fine_tune_epochs = spin(
            0,
            1000,
            d.fine_tune_epochs or 0,
            "Phase 2 epochs (early stopping applies); auto: a budget sized by the number of training "
            "images (the README's recipe table)",
        )
        self.fine_tune_epochs.setSpecialValueText("auto")
        self.fine_tune_blocks = spin(
            1, 100, d.fine_tune_blocks, "How many top blocks of the backbone to unfreeze in phase 2"
        )
        self.learning_rate = real(
            1e-6,
            1.0,
            d.learning_rate,
            1e-4,
            6,
            "Adam's rate for phase 1; phase 2 uses 10× lower so pretrained weights are nudged, not destroyed",
        )
        self.batch_size = spin(1, 4096, d.batch_size, "Images per step; lower it if memory runs out")
        self.patience = spin(
            1,
            100,
            d.early_stopping_patience,
            "Epochs without a better validation loss before stopping; the best weights are restored",
        )
        self.optimizer = QComboBox()
        self.optimizer.addItems(list(OPTIMIZERS))
        self.optimizer.setToolTip("Adam is the safe default for transfer learning")
        self.flip = check(
            "Horizontal flips",
            "Off for text, digits, maps: anything whose mirror image means something else",
            checked=d.augmentation.flip,
        )
        self.rotation = real(
            0.0, 0.5, d.augmentation.rotation, 0.01, 2, "Random rotation, as a fraction of a full turn"
        )
        self.zoom = real(0.0, 0.5, d.augmentation.zoom, 0.05, 2, "Random zoom in and out")
        self.mixed = check(
            "Mixed precision (GPU)", "float16 compute with loss scaling: faster on recent GPUs"
        )
        form = QFormLayout()
        form.addRow("Head epochs", self.epochs)
        form.addRow("", self.fine_tune)
        form.addRow("Fine-tune epochs", self.fine_tune_epochs)
        form.addRow("Blocks to unfreeze", self.fine_tune_blocks)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Early-stopping patience", self.patience)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Augmentation", self.flip)
        form.addRow("Rotation", self.rotation)
        form.addRow("Zoom", self.zoom)
        form.addRow("", self.mixed)
        self.mirrored = check(
            "Use every GPU",
            "Data-parallel training over all local GPUs (MirroredStrategy); the batch is split between them",
        )
        form.addRow("", self.mirrored)
        self.calibrate = check(
            "Calibrate confidences",
            "Temperature scaling fitted on the validation split, baked into the export: the predicted "
            "class stays the same, the probabilities become honest",
        )
        form.addRow("", self.calibrate)
        self.feature_cache = check(
            "Cache backbone features",
            "With the backbone frozen and augmentation off, compute its features once and train the head on "
            "them: epochs after the first are many times faster",
            checked=True,
        )
        form.addRow("", self.feature_cache)
        settings_box = QGroupBox("Settings")
        settings_box.setLayout(form)

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
        self.message = QLabel("")
        for label in (self.phase, self.speed, self.device, self.message):  # long texts wrap, never widen
            label.setWordWrap(True)

        left = QVBoxLayout()
        left.addWidget(settings_box)
        left.addLayout(buttons)
        left.addWidget(self.readiness)
        left.addWidget(self.phase)
        left.addWidget(self.progress)
        left.addWidget(self.speed)
        left.addWidget(self.device)
        left.addWidget(self.message)
        left.addStretch(1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(400)
        self.curves = CurvesWidget(self)
        layout = QHBoxLayout(self)
        layout.addWidget(left_widget)
        layout.addWidget(self.curves, 1)

    # -- settings ------------------------------------------------------------------------------------
    def apply_to(self, settings: TrainSettings) -> TrainSettings:
        """Settings with this panel's values; what the panel does not show is kept as it was."""
        if self.mirrored.isChecked():
            strategy = "mirrored"
        else:  # a multi-worker project stays one
            strategy = "default" if settings.strategy == "mirrored" else settings.strategy
        return settings.but(
            epochs=self.epochs.value(),
            fine_tune_epochs=(self.fine_tune_epochs.value() or None) if self.fine_tune.isChecked() else 0,
            fine_tune_blocks=self.fine_tune_blocks.value(),
            learning_rate=self.learning_rate.value(),
            batch_size=self.batch_size.value(),
            early_stopping_patience=self.patience.value(),
            optimizer=self.optimizer.currentText(),
            augmentation=replace(
                settings.augmentation,
                flip=self.flip.isChecked(),
                rotation=self.rotation.value(),
                zoom=self.zoom.value(),
            ),
            mixed_precision=self.mixed.isChecked(),
            strategy=strategy,
            calibrate=self.calibrate.isChecked(),
            feature_cache=self.feature_cache.isChecked(),
        )

    def show_settings(self, s: TrainSettings) -> None:
        """Fill the form from settings (a loaded project)."""
        self.epochs.setValue(s.epochs)
        self.fine_tune.setChecked(s.fine_tune_epochs != 0)
        self.fine_tune_epochs.setValue(s.fine_tune_epochs or 0)  # 0 shows "auto"
        self.fine_tune_blocks.setValue(s.fine_tune_blocks)
        self.learning_rate.setValue(s.learning_rate)
        self.batch_size.setValue(s.batch_size)
        self.patience.setValue(s.early_stopping_patience)
        self.optimizer.setCurrentText(s.optimizer)
        self.flip.setChecked(s.augmentation.flip)
        self.rotation.setValue(s.augmentation.rotation)
        self.zoom.setValue(s.augmentation.zoom)
        self.mixed.setChecked(s.mixed_precision)
        self.mirrored.setChecked(s.strategy == "mirrored")
        self.calibrate.setChecked(s.calibrate)
        self.feature_cache.setChecked(s.feature_cache)

    # -- running -------------------------------------------------------------------------------------
    def run(
        self, settings: TrainSettings, data_dir: str, run_dir: Path, manifest=None, resume: bool = False
    ) -> None:
        """Start a training session in a worker thread (``resume``: continue the run in ``run_dir``)."""
        if self.is_running():
            return
        self.curves.clear()
        self.events_seen = 0
        self.message.setText(f"Run folder: {run_dir}")
        self.run_dir = Path(run_dir)
        self.task = Task(
            lambda task: run_session(task, settings, data_dir, run_dir, manifest, resume), with_report=True
        )
        self.task.event.connect(self.on_event)
        self.task.done.connect(self._done)
        self.task.failed.connect(self._crashed)
        self.start.setEnabled(False)
        self.stop.setEnabled(True)
        self.phase.setText("Preparing data and model…")
        self._active = True
        self.task.start()

    def is_running(self) -> bool:
        """Whether a session is running, or its result has not been handled yet."""
        return self._active

    def request_stop(self) -> None:
        """Stop within a batch; the best weights are kept."""
        if self.task is not None and self._active:
            self.task.stop()
            self.stop.setEnabled(False)
            self.phase.setText(
                "Stopping after this batch (the first one also builds the graph and takes longer), then "
                "evaluating and exporting the best weights so far…"
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
            if event.step == 1:
                self._epoch_started = time.perf_counter()
            self.curves.add_batch(event.epoch, event.step, event.steps, event.loss)
            self.progress.setMaximum(event.steps)
            self.progress.setValue(event.step)
            elapsed = time.perf_counter() - self._epoch_started
            eta = elapsed / event.step * (event.steps - event.step)
            self.speed.setText(
                f"Epoch {event.epoch + 1}/{self._phase_end} · loss {event.loss:.4f} · "
                f"{event.images_per_second:,.0f} images/s · ETA {eta:.0f} s"
            )
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
        elif isinstance(event, ev.RecipeChanged):
            self.message.setText(event.reason)
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
        """The Layers panel's plan: one of the user's own trains in one phase, so the recipe's
        phase-2 settings do not apply (and say so) until the plan is feature extraction again."""
        one = is_one_phase(plan)
        for widget in (self.fine_tune, self.fine_tune_epochs, self.fine_tune_blocks):
            widget.setEnabled(not one)
        self.fine_tune.setText("Off: one phase, your plan" if one else "Then fine-tune top blocks")
        self.fine_tune.setToolTip(
            "Your freeze plan (Layers panel) trains as set, in one phase; choose 'Feature extraction' "
            "there for the recipe's phases"
            if one
            else FINE_TUNE_TIP
        )

    def set_missing(self, missing: list[str]) -> None:
        """What the window still needs before a run (empty: ready); Start waits for it."""
        self.missing = list(missing)
        self.start.setEnabled(not self.missing and not self.is_running())
        self.readiness.setText("Before training: " + "; ".join(self.missing) + "." if self.missing else "")

    def _done(self, result) -> None:
        self._active = False
        self.progress.setRange(0, 1)
        self.progress.setFormat("%v / %m steps")
        self.start.setEnabled(not self.missing)
        self.stop.setEnabled(False)
        self.phase.setText(f"Finished: {result.status}.")
        self.curves.redraw()
        self.finished.emit(result)

    def _crashed(self, message: str) -> None:
        self._active = False
        self.start.setEnabled(True)
        self.stop.setEnabled(False)
        self.message.setText(f"<span style='color:#b00'>{message.splitlines()[0]}</span>")
