"""The "Distil into a small model…" dialog: the selected run teaches a small student, in the background.

The same core call as ``tlstudio distill`` (``core.training.distill.distill``) runs in a worker task;
its events drive a progress bar, Cancel stops it within a batch (the best weights so far are kept),
and the student beside its teacher is shown when it ends.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
)

from tlstudio.core import events as ev
from tlstudio.core.settings import (
    DISTILL_EPOCHS,
    DISTILL_LEARNING_RATE,
    DISTILL_STUDENTS,
    DISTILL_TEMPERATURE,
)
from tlstudio.core.training.distill_inputs import DistillSettings, distill_problem
from tlstudio.gui.worker import Task


def distill_job(teacher: Path, out: Path, settings: DistillSettings, unlabelled: Path | None, task: Task):
    """Worker job: the distillation, its events reported to the dialog."""
    from tlstudio.core.training.distill import distill

    return distill(teacher, out, settings, unlabelled=unlabelled, on_event=task.report, stop=task.stop_token)


class DistillDialog(QDialog):
    """Choose a student and start; ``finished_run(run_dir, status, metrics)`` is called on success."""

    def __init__(self, teacher: Path, parent=None, on_student=None):
        super().__init__(parent)
        self.setWindowTitle("Distil into a small model")
        self.teacher = Path(teacher)
        self.on_student = on_student  # called with (run_dir, status, metrics) once a student is made
        self.task: Task | None = None
        self.result = None
        self.student = QComboBox()
        self.student.setEditable(True)  # any backbone name or model file works too
        self.student.addItems(list(DISTILL_STUDENTS))
        self.student.setCurrentText(DISTILL_STUDENTS[-1])  # EfficientNet-Lite0: no download needed
        self.weights = QComboBox()
        self.weights.addItems(["imagenet", "none"])
        self.weights.setToolTip("The student's starting weights: ImageNet (cached or fetched once), or none")
        self.out = QLineEdit(str(self.teacher.with_name(f"{self.teacher.name}-student")))
        self.unlabelled = QLineEdit()
        self.unlabelled.setPlaceholderText("optional: a folder of images without labels")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(DISTILL_EPOCHS)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.5, 20.0)
        self.temperature.setSingleStep(0.5)
        self.temperature.setValue(DISTILL_TEMPERATURE)
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(5)
        self.learning_rate.setRange(1e-5, 1.0)
        self.learning_rate.setSingleStep(1e-4)
        self.learning_rate.setValue(DISTILL_LEARNING_RATE)
        self.learning_rate.setToolTip("Adam's rate at the start of its cosine decay")
        form = QFormLayout()
        form.addRow("Teacher", QLabel(escape(str(self.teacher))))
        form.addRow("Student", self.student)
        form.addRow("Student weights", self.weights)
        form.addRow("Student run folder", self.out)
        form.addRow("Unlabelled images", self.unlabelled)
        form.addRow("Epochs", self.epochs)
        form.addRow("Temperature", self.temperature)
        form.addRow("Learning rate", self.learning_rate)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.report = QTextBrowser()
        self.report.setPlaceholderText(
            "The student learns the teacher's soft labels on the teacher's own split, then is checked "
            "against it on the test images: agreement, accuracy, latency and size."
        )
        self.start_button = QPushButton("Distil")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.task is not None and self.task.stop())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.start_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.report, 1)
        layout.addWidget(buttons)

    def settings(self) -> DistillSettings:
        """The settings the form shows."""
        return DistillSettings(
            student=self.student.currentText().strip(),
            student_weights=self.weights.currentText(),
            epochs=self.epochs.value(),
            temperature=self.temperature.value(),
            learning_rate=self.learning_rate.value(),
        )

    def start(self) -> None:
        """Check the form, then distil in a worker task (a problem is said, nothing starts)."""
        if self.task is not None and self.task.is_running():
            return
        settings, out = self.settings(), Path(self.out.text().strip())
        unlabelled = Path(self.unlabelled.text().strip()) if self.unlabelled.text().strip() else None
        if why := distill_problem(self.teacher, out, settings, unlabelled=unlabelled):
            self.report.setHtml(f"<p style='color:#b00'>{escape(why)}</p>")
            return
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.report.setHtml("Starting: the teacher labels the images first…")
        teacher = self.teacher
        self.task = Task(lambda task: distill_job(teacher, out, settings, unlabelled, task), with_report=True)
        self.task.event.connect(self._event)
        self.task.done.connect(self._done)
        self.task.failed.connect(self._failed)
        self.task.start()

    def _event(self, event) -> None:
        if isinstance(event, ev.Working | ev.Finishing) and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.progress.setFormat(f"{event.step}: %v/%m")
        elif isinstance(event, ev.Finishing):
            self.progress.setFormat(event.step)
        elif isinstance(event, ev.PhaseStarted):
            self.progress.setRange(0, event.epochs)
            self.progress.setValue(0)
        elif isinstance(event, ev.EpochEnded):
            self.progress.setValue(event.epoch + 1)
            agree = event.metrics.get("val_agreement", event.metrics.get("agreement"))
            shown = f", agreement {agree:.3f}" if agree is not None else ""
            self.progress.setFormat(f"epoch %v/%m{shown}")

    def _done(self, result) -> None:
        from tlstudio.core.training.distill_check import describe

        self.result = result
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if result.status == "failed":
            self.report.setHtml(f"<p style='color:#b00'><b>Failed</b>: {escape(result.error or '')}</p>")
            return
        text = describe(result.comparison) if result.comparison else "No comparison: nothing was exported."
        self.report.setHtml(
            f"<p><b>Student {escape(result.status)}</b> in <code>{escape(str(result.run_dir))}</code>: "
            "a normal run (Evaluate and Export take it).</p><pre>" + escape(text) + "</pre>"
        )
        if self.on_student is not None:
            self.on_student(result.run_dir, result.status, result.metrics)

    def _failed(self, message: str) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.report.setHtml(f"<p style='color:#b00'><b>Failed</b></p><pre>{escape(message)}</pre>")

    def reject(self) -> None:
        """Close; a distillation under way is asked to stop first (its best weights are kept)."""
        if self.task is not None and self.task.is_running():
            self.task.stop()
            self.task.wait()
        super().reject()
