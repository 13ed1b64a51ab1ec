"""The error gallery of the Evaluate panel: a run's misclassified (or chosen) test images as
thumbnails, moving a file to its right class with undo, and Grad-CAM of the selected image.

A run's images are read from the data folder its ``run.json`` records (the project's data folder
when it records none, or when the file is not there any more); an image found in neither shows a
placeholder that says so. Grad-CAM loads the run's ``model.keras`` once, in a worker task; the
panel stays responsive.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QPixmap
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
from tlstudio.core.results.error_order import cell_predictions, ordered_errors
from tlstudio.core.results.run_folder import run_status
from tlstudio.gui.evaluate_models import (
    NOT_FOUND,
    GalleryModel,
    manifest_at,
    thumbnail,
    thumbnail_view,
)
from tlstudio.gui.try_panel import to_pixmap
from tlstudio.gui.worker import Task, reason

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


CAM_HINT = "Select an image, then Grad-CAM."


def start_gradcam(preview, button, path: Path | None, shown: str, job, on_done) -> Task | None:
    """Start a gallery's Grad-CAM job in a worker (``button`` then cancels it), or say in ``preview``
    that its image is gone.

    Args:
        preview: the label that shows the overlay or the words.
        button: the Grad-CAM button (its text says whether a job runs).
        path: the image on disk, or None when it is no longer there.
        shown: the image's path as the gallery lists it.
        job: the work (``gradcam_job``) run in the worker.
        on_done: called on the GUI thread with the job's result.

    Returns:
        The started task, or None when the image is gone.
    """
    if path is None:
        gradcam_finished(preview, button, f"Grad-CAM: {NOT_FOUND}: {shown}")
        return None
    preview.setText("Computing Grad-CAM…")
    preview.setToolTip("")
    button.setText("Cancel Grad-CAM")
    task = Task(job)
    task.done.connect(on_done)
    task.failed.connect(lambda message: gradcam_failed(preview, button, message))
    task.start()
    return task


def gradcam_failed(preview, button, message: str) -> None:
    """The error's own words in full (the label wraps them), the traceback in the tooltip."""
    gradcam_finished(preview, button, f"Grad-CAM failed: {reason(message)}")
    preview.setToolTip(message)


def gradcam_finished(preview, button, text: str | None = None) -> None:
    """The button back to *Grad-CAM*; ``text`` shown, with a break opportunity after each path
    separator so a long path wraps instead of clipping."""
    button.setText("Grad-CAM")
    if text is not None:
        preview.setText(text.replace("/", "/\u200b").replace("\\", "\\\u200b"))


class RunGalleryModel(GalleryModel):
    """The gallery's items, each thumbnail read from where ``locate(relative path)`` finds it."""

    def __init__(self, locate: Callable[[str], Path | None]) -> None:
        super().__init__()
        self.locate = locate
        self._pixmaps: dict[str, QPixmap] = {}

    def forget_thumbnails(self) -> None:
        """Drop the thumbnails read so far (another run: the same relative path may be another file)."""
        self._pixmaps.clear()

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        value = super().data(index, role)
        missing = role == Qt.ItemDataRole.ToolTipRole and value is not None
        if missing and self.locate(str(self.items[index.row()]["path"])) is None:
            value += f"\n({NOT_FOUND} in the run's or the project's data folder)"
        return value

    def _thumb(self, rel: str) -> QPixmap:
        if rel not in self._pixmaps:
            self._pixmaps[rel] = thumbnail(self.locate(rel))
        return self._pixmaps[rel]


class ErrorGallery(QWidget):
    """Thumbnails of one run's test images with the actions on them; ``data_changed`` after a move."""

    data_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.data_dir: Path | None = None  # the project's: moves happen there
        self.run_data_dir: Path | None = None  # the run's, as its run.json records it
        self.manifest_path: Path | None = None
        self.predictions: list[dict] = []
        self.undo_stack: list[tuple[relabel.Move, int]] = []
        self.task: Task | None = None
        self.gallery_model = RunGalleryModel(self.image_path)
        self.gallery = thumbnail_view(self.gallery_model)
        self.gallery.selectionModel().currentChanged.connect(lambda *_: self._selection_changed())
        self.gallery_title = QLabel("Gallery")
        self.order = QComboBox()
        self.order.addItems(list(ORDERS))
        self.order.activated.connect(lambda _: self.show_errors())
        self.order.setToolTip("Which images the gallery shows, and in which order")
        self.target = QComboBox()
        self.target.setToolTip(
            "The class that 'Move to class' moves the selected image to (the predicted class at first)"
        )
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
        self.preview = QLabel(CAM_HINT)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setWordWrap(True)  # a long error message is shown whole, never clipped
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
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
        if data_dir != self.data_dir:
            self.gallery_model.forget_thumbnails()
        self.data_dir, self.manifest_path = data_dir, manifest_path

    def show_run(
        self, run_dir: Path, labels: list[str], predictions: list[dict], data_dir: Path | None = None
    ) -> None:
        """A run's test predictions: its errors, most confidently wrong first.

        Args:
            run_dir: the run's folder (its model for Grad-CAM, its run.json for its data folder).
            labels: the run's classes.
            predictions: its test predictions (path relative to its data folder, true, predicted,
                confidence).
            data_dir: the folder the paths are relative to; by default the one ``run.json`` records.
        """
        self.run_dir, self.predictions = run_dir, list(predictions)
        if data_dir is None and self.predictions:
            recorded = run_status(run_dir).get("data_dir")
            data_dir = Path(recorded) if isinstance(recorded, str) and recorded else None
        self.run_data_dir = data_dir
        self.gallery_model.forget_thumbnails()
        self.target.clear()
        self.target.addItems(labels)
        self.show_errors()

    def show_cell(self, true: str, predicted: str) -> None:
        """The images behind one confusion-matrix cell: wrong predictions most confident first,
        right ones (a diagonal cell) least confident first — the closest to being wrong."""
        items = cell_predictions(self.predictions, true, predicted)
        wrong = true != predicted
        items.sort(key=lambda p: -float(p["confidence"]) if wrong else float(p["confidence"]))
        order = "most confident first" if wrong else "least confident first"
        self._show_items(items, f"<b>True {true}, predicted {predicted}</b>: {len(items)} image(s), {order}")

    def show_errors(self) -> None:
        """The error gallery in the chosen order."""
        items = ordered_errors(self.predictions, ORDERS[self.order.currentText()])
        self._show_items(items, f"<b>{self.order.currentText()}</b>: {len(items)} image(s)")

    def _show_items(self, items: list[dict], title: str) -> None:
        self.gallery_title.setText(title)
        self.gallery_model.set_items(items, self.data_dir)
        self._selection_changed()

    def image_path(self, rel: str) -> Path | None:
        """The file of a prediction's relative path: in the run's data folder, else the project's
        (None when neither has it)."""
        for root in (self.run_data_dir, self.data_dir):
            if root is not None and (path := in_folder(root, rel)).is_file():
                return path
        return None

    def _movable(self, rel: str) -> bool:
        """Whether the image is a file of the project's data folder (only those are moved)."""
        path = self.image_path(rel)
        return (
            self.data_dir is not None
            and path is not None
            and path.resolve() == in_folder(self.data_dir, rel).resolve()
        )

    def _selection_changed(self) -> None:
        """A new image selected (or none): the Grad-CAM of the previous one goes (one still
        computing is dropped), and 'Move to class' offers the image's predicted class."""
        if self.task is not None:
            self.task.retire()  # (kept: closing the window waits for its thread)
        self.cam_button.setText("Grad-CAM")
        self.preview.clear()
        self.preview.setText(CAM_HINT)
        self.preview.setToolTip("")
        current = self._current()
        if current is not None:
            predicted = str(current[1]["predicted"])
            if self.target.findText(predicted) >= 0:
                self.target.setCurrentText(predicted)
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
        if not self._movable(str(item["path"])):
            self.gallery_title.setText(
                "<span style='color:#b00'>Not moved: the image is not in the project's data folder "
                "(the run was trained on another folder)</span>"
            )
            return
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
        if current is None or self.run_dir is None:
            return
        _, item = current
        run_dir, path = self.run_dir, self.image_path(str(item["path"]))
        self.task = start_gradcam(
            self.preview,
            self.cam_button,
            path,
            str(item["path"]),
            lambda: gradcam_job(run_dir, path, str(item["predicted"])),
            lambda result: self._show_overlay(result, item),
        )

    def _cam_finished(self, text: str | None = None) -> None:
        gradcam_finished(self.preview, self.cam_button, text)

    def _show_overlay(self, result, item) -> None:
        self._cam_finished()
        pixels, prob = result
        self.preview.setPixmap(to_pixmap(pixels))
        self.preview.setToolTip(f"Grad-CAM for '{item['predicted']}' (p = {prob:.2f})")

    def _open_folder(self) -> None:
        current = self._current()
        if current is not None and (path := self.image_path(str(current[1]["path"]))) is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))

    def _update_buttons(self) -> None:
        current = self._current()
        found = current is not None and self.image_path(str(current[1]["path"])) is not None
        for button in (self.folder_button, self.cam_button):
            button.setEnabled(found)
        movable = current is not None and self._movable(str(current[1]["path"]))
        self.move_button.setEnabled(movable)
        self.move_button.setToolTip(
            "Move the selected image's file into the class chosen on the left"
            if movable or current is None
            else "Only images in the project's data folder can be moved: this run's are elsewhere"
        )
        self.undo_button.setEnabled(bool(self.undo_stack))
