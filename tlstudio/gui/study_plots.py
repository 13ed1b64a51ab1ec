"""The Experiments view's plots: Optuna's parallel coordinates, slice and importance plots and its
parameter importances (``core.studies.insight``), drawn off the GUI thread whenever the set of
complete trials changes, and shown as pictures."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from tlstudio.core.studies.insight import MIN_TRIALS, PLOTS, Insight, describe
from tlstudio.gui.worker import Task, reason


def compute(folder: Path) -> tuple[Insight | str, dict[str, QImage]]:
    """(In the task's thread) the insight of the folder's trials and each plot as an image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from tlstudio.core.studies.insight import insight, study_from_snapshot

    study = study_from_snapshot(folder)
    if isinstance(study, str):
        return study, {}
    found = insight(study, draw=True)
    images = {}
    for name, figure in found.figures.items():
        canvas = FigureCanvasAgg(figure)  # (pyplot let go of it: drawn on a canvas of its own)
        canvas.draw()
        width, height = canvas.get_width_height()
        data = bytes(canvas.buffer_rgba())
        images[name] = QImage(data, width, height, QImage.Format.Format_RGBA8888).copy()
    return found, images


class StudyPlots(QWidget):
    """A plot chosen from ``PLOTS`` and the importances line, for the complete trials of a folder."""

    def __init__(self, folder: Path, parent=None):
        super().__init__(parent)
        self.folder = folder
        self.choice = QComboBox()
        self.choice.addItems(PLOTS)
        self.choice.currentIndexChanged.connect(lambda *_: self._show())
        self.importance = QLabel()
        self.importance.setWordWrap(True)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumHeight(220)
        self.picture.setWordWrap(True)
        self.task: Task | None = None
        self.drawn: tuple[int, ...] | None = None  # the complete trials asked for last
        self.waiting: tuple[int, ...] | None = None  # asked while a drawing was under way
        self.insight: Insight | None = None
        self.images: dict[str, QImage] = {}
        top = QHBoxLayout()
        top.addWidget(QLabel("Plot"))
        top.addWidget(self.choice)
        top.addWidget(self.importance, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.picture, 1)
        self.follow(())

    def follow(self, complete: tuple[int, ...]) -> None:
        """Draw again when the complete trials (by number) differ from the last drawing's."""
        if complete == self.drawn:
            return
        if self.task is not None and self.task.is_running():
            self.waiting = complete
            return
        self.drawn, self.waiting = complete, None
        if len(complete) < MIN_TRIALS:
            self.insight, self.images = None, {}
            words = f"Importance and plots need {MIN_TRIALS} complete trials ({len(complete)} so far)."
            self.importance.setText(words)
            self.picture.setText("")
            self.picture.setPixmap(QPixmap())
            return
        self.importance.setText(f"Drawing Optuna's plots of {len(complete)} complete trials…")
        self.task = Task(lambda: compute(self.folder), parent=self)
        self.task.done.connect(self._drawn)
        self.task.failed.connect(lambda message: self.importance.setText(f"No plots: {reason(message)}"))
        self.task.start()

    def _drawn(self, result: tuple[Insight | str, dict[str, QImage]]) -> None:
        found, self.images = result
        self.insight = found if isinstance(found, Insight) else None
        if isinstance(found, str):
            self.importance.setText(found)
        elif found.importance is None:
            self.importance.setText(found.reason or "")
        else:
            self.importance.setText(f"Parameter importance (Optuna, fANOVA): {describe(found.importance)}")
        self._show()
        if self.waiting is not None:
            self.task.wait()  # (its thread is ending: the next drawing starts cleanly)
            waiting, self.waiting = self.waiting, None
            self.follow(waiting)

    def _show(self) -> None:
        image = self.images.get(self.choice.currentText())
        if image is None:
            self.picture.setPixmap(QPixmap())
            if self.insight is not None and self.insight.reason:
                self.picture.setText(self.insight.reason)
            return
        width = max(200, self.picture.width())
        self.picture.setPixmap(
            QPixmap.fromImage(image).scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
        )

    def stop(self) -> None:
        """Wait for a drawing under way (the view is closing)."""
        if self.task is not None:
            self.task.wait()
