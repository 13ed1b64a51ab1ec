"""The error gallery of the Evaluate panel: a run's misclassified (or chosen) test images as
thumbnails, moving a file to its right class with undo, and Grad-CAM of the selected image.

Grad-CAM loads the run's ``model.keras`` once, in a worker task; the panel stays responsive.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.data import relabel
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import Manifest
from tlstudio.core.results.metrics import cell_predictions, ordered_errors
from tlstudio.gui.evaluate_models import GalleryModel, manifest_at, thumbnail_view
from tlstudio.gui.worker import Task

ORDERS = {
    "Most confidently wrong": "confidently_wrong",
    "Least confident": "least_confident",
}


@functools.lru_cache(maxsize=1)
def _gradcam_of(run_dir: Path):
    """The run's model, loaded once for every Grad-CAM of it (clicks in a row are on one run)."""
    from tlstudio.core.results.gradcam import gradcam_for_run

    return gradcam_for_run(run_dir)


def gradcam_job(run_dir: Path, image_path: Path, class_name: str):
    """Worker job: Grad-CAM of one image for one class, blended over the image (uint8 RGB)."""
    from tlstudio.core.data.pipeline import load_for_model
    from tlstudio.core.results.gradcam import overlay

    cam, labels = _gradcam_of(Path(run_dir))
    heat, _, prob = cam.heatmap(load_for_model(image_path, cam.image_size), labels.index(class_name))
    return overlay(load_for_model(image_path, 256), heat), prob


class ErrorGallery(QWidget):
    """Thumbnails of one run's test images with the actions on them; ``data_changed`` after a move."""

    data_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.data_dir: Path | None = None
        self.manifest_path: Path | None = None
        self.predictions: list[dict] = []
        self.undo_stack: list[tuple[relabel.Move, int]] = []
        self.task: Task | None = None
        self.gallery_model = GalleryModel()
        self.gallery = thumbnail_view(self.gallery_model)
        self.gallery.selectionModel().currentChanged.connect(lambda *_: self._update_buttons())
        self.gallery_title = QLabel("Gallery")
        self.order = QComboBox()
        self.order.addItems(list(ORDERS))
        self.order.activated.connect(lambda _: self.show_errors())
        self.order.setToolTip("Which images the gallery shows, and in which order")
        self.target = QComboBox()
        self.target.setToolTip("The class that 'Move to class' moves the selected image to")
        self.move_button = QPushButton("← Move to class")
        self.move_button.setToolTip("Move the selected image's file into the class chosen on the left")
        self.move_button.clicked.connect(lambda: self.confirm_move(self.target.currentText()))
        self.undo_button = QPushButton("Undo move")
        self.undo_button.setShortcut("Ctrl+Z")
        self.undo_button.clicked.connect(self.undo_move)
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(self._open_folder)
        self.cam_button = QPushButton("Grad-CAM")
        self.cam_button.setToolTip("Where the model looks for the predicted class")
        self.cam_button.clicked.connect(self.show_gradcam)
        self.preview = QLabel("Select an image, then Grad-CAM.")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(200, 200)

        tools = QGridLayout()
        for i, w in enumerate(
            (self.order, self.target, self.move_button, self.undo_button, self.folder_button, self.cam_button)
        ):
            tools.addWidget(w, i // 3, i % 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.gallery_title)
        layout.addLayout(tools)
        layout.addWidget(self.gallery, 3)
        layout.addWidget(self.preview, 2)
        self._update_buttons()

    def set_data(self, data_dir: Path | None, manifest_path: Path | None) -> None:
        """The project's data folder and split file (a move updates both)."""
        self.data_dir, self.manifest_path = data_dir, manifest_path

    def show_run(self, run_dir: Path, labels: list[str], predictions: list[dict]) -> None:
        """A run's test predictions: its errors, most confidently wrong first."""
        self.run_dir, self.predictions = run_dir, list(predictions)
        self.target.clear()
        self.target.addItems(labels)
        self.show_errors()

    def show_cell(self, true: str, predicted: str) -> None:
        """The images behind one confusion-matrix cell."""
        items = cell_predictions(self.predictions, true, predicted)
        self.gallery_title.setText(f"<b>True {true}, predicted {predicted}</b>: {len(items)} image(s)")
        self.gallery_model.set_items(items, self.data_dir)
        self._update_buttons()

    def show_errors(self) -> None:
        """The error gallery in the chosen order."""
        items = ordered_errors(self.predictions, ORDERS[self.order.currentText()])
        self.gallery_title.setText(f"<b>{self.order.currentText()}</b>: {len(items)} image(s)")
        self.gallery_model.set_items(items, self.data_dir)
        self._update_buttons()

    def _current(self) -> tuple[int, dict[str, object]] | None:
        index = self.gallery.currentIndex()
        return (index.row(), self.gallery_model.items[index.row()]) if index.isValid() else None

    def confirm_move(self, new_class: str) -> None:
        """Ask before a file of the user's data folder moves, then move it."""
        current = self._current()
        if current is None:
            return
        answer = QMessageBox.question(
            self,
            "Move the image?",
            f"Move {current[1]['path']} into the class folder '{new_class}' of your data folder?\n"
            "The project's split follows; Ctrl+Z (Undo) puts it back.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.move_current(new_class)

    def move_current(self, new_class: str) -> None:
        """Move the selected image's file to ``new_class`` (the project's manifest follows)."""
        current = self._current()
        if current is None or self.data_dir is None:
            return
        row, item = current
        manifest = self._manifest()
        try:
            move, _ = relabel.move_to_class(
                self.data_dir,
                str(item["path"]),
                new_class,
                manifest=manifest,
                manifest_path=self.manifest_path,
            )
        except (relabel.RelabelError, OSError) as err:
            self.gallery_title.setText(f"<span style='color:#b00'>Not moved: {err}</span>")
            return
        item["path"], item["moved_to"] = move.new_path, new_class
        self.undo_stack.append((move, row))
        self.gallery_model.refresh(row)
        self.gallery_title.setText(f"Moved to <b>{new_class}</b>: {move.new_path} (Undo: Ctrl+Z)")
        self.data_changed.emit()
        self._update_buttons()

    def undo_move(self) -> None:
        """Put the last moved file back."""
        if not self.undo_stack or self.data_dir is None:
            return
        move, row = self.undo_stack.pop()
        try:
            relabel.undo(self.data_dir, move, manifest=self._manifest(), manifest_path=self.manifest_path)
        except (relabel.RelabelError, OSError) as err:
            self.gallery_title.setText(f"<span style='color:#b00'>Cannot undo: {err}</span>")
            return
        for item in self.gallery_model.items:
            if item["path"] == move.new_path:
                item["path"], item["moved_to"] = move.old_path, None
        if row < len(self.gallery_model.items):
            self.gallery_model.refresh(row)
        self.gallery_title.setText(f"Moved back: {move.old_path}")
        self.data_changed.emit()
        self._update_buttons()

    def _manifest(self) -> Manifest | None:
        return manifest_at(self.manifest_path)

    def show_gradcam(self) -> None:
        """Grad-CAM of the selected image for its predicted class, in a worker; pressed again while
        it computes, the button cancels it (its result is dropped; the window is free at once)."""
        if self.task is not None and self.cam_button.text() != "Grad-CAM":
            self.task.retire()
            self._cam_finished("Grad-CAM cancelled.")
            return
        current = self._current()
        if current is None or self.run_dir is None or self.data_dir is None:
            return
        _, item = current
        path = in_folder(self.data_dir, str(item["path"]))
        self.preview.setText("Computing Grad-CAM…")
        self.cam_button.setText("Cancel Grad-CAM")
        self.task = Task(lambda: gradcam_job(self.run_dir, path, str(item["predicted"])))
        self.task.done.connect(lambda result: self._show_overlay(result, item))
        self.task.failed.connect(lambda msg: self._cam_finished("Grad-CAM: " + msg.splitlines()[0]))
        self.task.start()

    def _cam_finished(self, text: str | None = None) -> None:
        self.cam_button.setText("Grad-CAM")
        if text is not None:
            self.preview.setText(text)

    def _show_overlay(self, result, item) -> None:
        self._cam_finished()
        pixels, prob = result
        h, w = pixels.shape[:2]
        image = QImage(pixels.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.preview.setPixmap(QPixmap.fromImage(image))
        self.preview.setToolTip(f"Grad-CAM for '{item['predicted']}' (p = {prob:.2f})")

    def _open_folder(self) -> None:
        current = self._current()
        if current is not None and self.data_dir is not None:
            folder = in_folder(self.data_dir, str(current[1]["path"])).parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _update_buttons(self) -> None:
        has_image = self.gallery.currentIndex().isValid()
        for button in (self.move_button, self.folder_button, self.cam_button):
            button.setEnabled(has_image)
        self.undo_button.setEnabled(bool(self.undo_stack))
