"""Try it: drop, paste or choose images (or a folder) and see what the selected run says of each —
its top classes with probabilities, how far that confidence held on the test split, and where it
looked (Grad-CAM) — without blocking the window; then copy an image into a class of the data folder.
A camera or a video file (``try_live``) feeds its frames through the same path, one at a time.

The model and the images are read in a worker (``core.results.try_it``); the panel only shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.data import relabel
from tlstudio.core.results import run_folder as files
from tlstudio.gui.state import AppState
from tlstudio.gui.try_label_cam import LabelCam, verdict_text
from tlstudio.gui.try_live import LiveControls, save_frame
from tlstudio.gui.worker import Task, reason

if TYPE_CHECKING:
    import numpy as np

ICON = 96
OVERLAY = 360  # px: the long side of the Grad-CAM view
NO_RUN_TEXT = "Train a run first (or select one in Evaluate): its model is the one you try here."


def try_job(task: Task, run_dir: Path, items: list, tryout):
    """Worker: load the run's model once (``tryout`` when already loaded), then classify each image
    file (a path) or camera/video frame (``(name, pixels)``), reporting each verdict as it is ready
    (``"verdict"`` or ``"frame"`` events); returns the loaded model for the next batch."""
    from tlstudio.core.results.try_it import Frame, Tryout, overlay_for

    if tryout is None or tryout.run_dir != run_dir:
        task.report(("loading", str(run_dir.name)))
        tryout = Tryout(run_dir)
    for item in items:
        if task.stop_token.is_set():
            break
        frame = Frame(*item) if isinstance(item, tuple) else None
        verdict = tryout.classify(item) if frame is None else tryout.classify_frame(frame)
        source = item if frame is None else frame.pixels
        picture = overlay_for(source, verdict.heat, OVERLAY) if verdict.heat is not None else None
        words = tryout.confidence_words(verdict) if verdict.top else ""
        if frame is None:
            task.report(("verdict", verdict, words, picture))
        else:
            task.report(("frame", verdict, words, picture, frame.pixels))
    return tryout


def to_pixmap(pixels: np.ndarray) -> QPixmap:
    """A QPixmap of uint8 RGB pixels (copied: the array may go)."""
    import numpy as np  # (loaded with the first picture shown, not with the window)

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = pixels.shape[:2]
    return QPixmap.fromImage(QImage(pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class TryPanel(QWidget):
    """See the module docstring. ``data_changed`` when an image was copied into the data folder."""

    data_changed = Signal()

    def __init__(self, parent=None, state: AppState | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.state = state or AppState()
        self.task: Task | None = None
        self.tryout = None  # the loaded run (core.results.try_it.Tryout), kept between batches
        self.pending: list[Path] = []
        self.words: dict[str, str] = {}  # path → the confidence in words
        self.pictures: dict[str, QPixmap] = {}  # path → the Grad-CAM overlay
        self.showing_frame: np.ndarray | None = None  # the camera/video frame shown, when one is
        self.live_tried = self.live_skipped = 0  # frames tried, and skipped while one was being tried

        self.title = QLabel(NO_RUN_TEXT)
        self.title.setWordWrap(True)
        self.add_files = QPushButton("Add images…")
        self.add_files.clicked.connect(self._ask_files)
        self.add_folder = QPushButton("Add folder…")
        self.add_folder.clicked.connect(self._ask_folder)
        self.clear = QPushButton("Clear")
        self.clear.clicked.connect(self.clear_images)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(lambda: self.task is not None and self.task.stop())
        QShortcut(QKeySequence.StandardKey.Paste, self, activated=self.paste)
        buttons = QHBoxLayout()
        for b in (self.add_files, self.add_folder, self.clear, self.cancel):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.live = LiveControls(self)
        self.live.frame.connect(self.try_frame)

        self.images = QListWidget()
        self.images.setViewMode(QListWidget.ViewMode.IconMode)
        self.images.setIconSize(QSize(ICON, ICON))
        self.images.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.images.setWordWrap(True)
        self.images.currentItemChanged.connect(self._show_current)
        self.picture = QLabel("Drop images or a folder here, paste one (Ctrl+V), or use the buttons.")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(240, 240)
        self.picture.setWordWrap(True)
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.label_cam = LabelCam(self)  # multi-label: a label clicked in the verdict shows its Grad-CAM
        self.classes = QComboBox()
        self.add_to_class = QPushButton("Copy into class")
        self.add_to_class.setToolTip("Copy the selected image into that class folder of the project's data")
        self.add_to_class.clicked.connect(self.copy_current)
        copy_row = QHBoxLayout()
        copy_row.addWidget(self.classes, 1)
        copy_row.addWidget(self.add_to_class)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.picture, 1)
        right_layout.addWidget(self.verdict)
        right_layout.addLayout(copy_row)
        splitter = QSplitter()
        splitter.addWidget(self.images)
        splitter.addWidget(right)
        splitter.setSizes([500, 500])
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(buttons)
        layout.addWidget(self.live)
        layout.addWidget(splitter, 1)
        self.follow(self.state)

    def follow(self, state: AppState) -> None:
        """Try ``state``'s selected run from now on."""
        self.state = state
        state.subscribe("project", self.clear_images)
        state.subscribe("selected_run", self._run_changed)
        state.subscribe("runs", self._run_changed)
        self._run_changed()

    # -- the run -----------------------------------------------------------------------------------
    def _run_changed(self) -> None:
        record = self.state.selected_record()
        if record is None or not (record.run_dir / files.MODEL).is_file():
            self.title.setText(NO_RUN_TEXT)
        else:
            self.title.setText(
                f"Trying run <b>{record.name}</b> ({record.status}; choose another in Evaluate or Export). "
                "Each image shows the top classes, how far that confidence held on the test split, and "
                "where the model looked."
            )
            labels = (record.run_dir / files.LABELS).read_text(encoding="utf-8").splitlines()
            self.classes.clear()
            self.classes.addItems(labels)
        if self.tryout is not None and self.tryout.run_dir != self.state.selected_run:
            self.words.clear()  # another run's verdicts: try the images again with the new one
            self.pictures.clear()
            again = [
                Path(self.images.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.images.count())
            ]
            self.images.clear()
            if again:
                self.add_images(again)
        self._update_buttons()

    # -- images ------------------------------------------------------------------------------------
    def add_images(self, paths: list) -> None:
        """Classify these images (folders: their images) with the selected run, in a worker."""
        from tlstudio.core.results.try_it import image_files

        found = image_files(paths)
        if not found:
            self.verdict.setText("No image files there.")
            return
        run = self.state.selected_run
        if run is None or not (run / files.MODEL).is_file():
            self.verdict.setText(NO_RUN_TEXT)
            return
        for path in found:
            item = QListWidgetItem(path.name + "\n…")
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self.images.addItem(item)
        if self.images.currentItem() is None:
            self.images.setCurrentRow(0)
        self.pending.extend(found)
        self._next_batch()

    def try_frame(self, name: str, pixels: np.ndarray) -> None:
        """A camera or video frame: tried in a worker, like a dropped image, unless one is being
        tried (then it is skipped: never more than one waits)."""
        if (self.task is not None and self.task.is_running()) or self.pending:
            self.live_skipped += 1
        else:
            self.live_tried += 1
            self._start([(name, pixels)])
        self.live.show_counts(self.live_tried, self.live_skipped)

    def stop_live(self) -> None:
        """Stop the camera or video, if one runs."""
        if self.live.is_active():
            self.live.source.stop()

    def _next_batch(self) -> None:
        if (self.task is not None and self.task.is_running()) or not self.pending:
            return
        batch, self.pending = self.pending, []
        self._start(batch)
        self.cancel.setEnabled(True)

    def _start(self, items: list) -> None:
        run, tryout = self.state.selected_run, self.tryout
        self.task = Task(lambda task: try_job(task, run, items, tryout), with_report=True)
        self.task.event.connect(self._on_event)
        self.task.done.connect(self._batch_done)
        self.task.failed.connect(self._failed)
        self.task.start()

    def _on_event(self, event) -> None:
        if event[0] == "loading":
            self.verdict.setText(f"Loading run {event[1]}'s model…")
            return
        if event[0] == "frame":
            self._show_frame(*event[1:])
            return
        _, verdict, words, picture = event
        item = self._item_of(verdict.path)
        if item is None:
            return
        if verdict.error:
            item.setText(f"{Path(verdict.path).name}\ncannot read")
            self.words[verdict.path] = f"Cannot read {verdict.path}: {verdict.error}"
        else:
            item.setText(f"{Path(verdict.path).name}\n{verdict.label} {verdict.confidence:.2f}")
            self.words[verdict.path] = verdict_text(verdict, words)
            item.setData(Qt.ItemDataRole.UserRole + 1, verdict.label)
        if picture is not None:
            self.pictures[verdict.path] = to_pixmap(picture)
        thumb = QPixmap(verdict.path)
        if not thumb.isNull():
            item.setIcon(QIcon(thumb.scaled(ICON, ICON, Qt.AspectRatioMode.KeepAspectRatio)))
        if item is self.images.currentItem():
            self._show_current()

    def _batch_done(self, tryout) -> None:
        self.tryout = tryout
        self.cancel.setEnabled(False)
        self._next_batch()

    def _failed(self, message: str) -> None:
        self.stop_live()  # the next frame would fail the same way
        self.cancel.setEnabled(False)
        self.pending.clear()
        self.verdict.setText(f"<span style='color:#b00'>{reason(message)}</span>")

    def _show_frame(self, verdict, words: str, picture, pixels: np.ndarray) -> None:
        self.showing_frame = pixels
        shown = to_pixmap(picture if picture is not None else pixels)
        self.picture.setPixmap(shown.scaled(OVERLAY, OVERLAY, Qt.AspectRatioMode.KeepAspectRatio))
        cam = self.tryout.cam_problem if self.tryout is not None and picture is None else ""
        self.verdict.setText(
            f"<b>{verdict.path}</b>: "
            + verdict_text(verdict, words)
            + (f"<br>No Grad-CAM: {cam}" if cam else "")
        )
        if not self.live.is_active():  # while live, the class chosen to copy into stays put
            self.classes.setCurrentText(verdict.label)
        self._update_buttons()

    def _item_of(self, path: str) -> QListWidgetItem | None:
        for i in range(self.images.count()):
            if self.images.item(i).data(Qt.ItemDataRole.UserRole) == path:
                return self.images.item(i)
        return None

    def _show_current(self) -> None:
        item = self.images.currentItem()
        self.showing_frame = None
        if item is None:
            self.picture.setText("Drop images or a folder here, paste one (Ctrl+V), or use the buttons.")
            self.verdict.setText("")
            self._update_buttons()
            return
        path = item.data(Qt.ItemDataRole.UserRole)
        picture = self.pictures.get(path)
        if picture is not None:
            self.picture.setPixmap(picture)
        else:
            original = QPixmap(path)
            self.picture.setPixmap(
                original.scaled(OVERLAY, OVERLAY, Qt.AspectRatioMode.KeepAspectRatio)
                if not original.isNull()
                else QPixmap()
            )
        cam = self.tryout.cam_problem if self.tryout is not None and picture is None else ""
        self.verdict.setText(
            self.words.get(path, "Classifying…") + (f"<br>No Grad-CAM: {cam}" if cam else "")
        )
        label = item.data(Qt.ItemDataRole.UserRole + 1)
        if label:
            self.classes.setCurrentText(label)
        self._update_buttons()

    def clear_images(self) -> None:
        """Forget every image (a new project, or Clear); a camera or video stops too."""
        self.stop_live()
        if self.task is not None and self.task.is_running():
            self.task.retire()
            self.task = None
        self.pending.clear()
        self.words.clear()
        self.pictures.clear()
        self.images.clear()
        self._show_current()

    def copy_current(self) -> None:
        """Copy the selected image (or the camera/video frame shown) into the chosen class folder of
        the project's data."""
        item, data_dir = self.images.currentItem(), self.state.project.data_dir
        if (item is None and self.showing_frame is None) or not data_dir:
            return
        label = self.classes.currentText()
        try:
            source = (
                item.data(Qt.ItemDataRole.UserRole)
                if self.showing_frame is None
                else save_frame(self.showing_frame)
            )
            copy = relabel.copy_into_class(data_dir, source, label)
        except (relabel.RelabelError, OSError) as err:
            self.verdict.setText(f"<span style='color:#b00'>Not copied: {err}</span>")
            return
        self.verdict.setText(f"Copied into <b>{label}</b>: {copy} (the Data panel scans again).")
        self.data_changed.emit()

    def _update_buttons(self) -> None:
        has_run = self.state.selected_run is not None
        for button in (self.add_files, self.add_folder):
            button.setEnabled(has_run)
        record = self.state.selected_record()
        self.live.set_has_run(record is not None and (record.run_dir / files.MODEL).is_file())
        self.add_to_class.setEnabled(
            (self.images.currentItem() is not None or self.showing_frame is not None)
            and bool(self.state.project.data_dir)
            and self.classes.count() > 0
        )

    # -- where images come from --------------------------------------------------------------------
    def _ask_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Images to try", "", "Images (*.jpg *.jpeg *.png *.bmp *.gif *.webp *.tif *.tiff)"
        )
        if files:
            self.add_images(files)

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of images to try")
        if folder:
            self.add_images([folder])

    def paste(self) -> None:
        """Ctrl+V: image files copied in a file manager, or an image on the clipboard (saved to a
        temporary PNG first)."""
        import tempfile

        mime = QApplication.clipboard().mimeData()
        if mime.hasUrls():
            self.add_images([u.toLocalFile() for u in mime.urls() if u.isLocalFile()])
        elif mime.hasImage():
            image = QApplication.clipboard().image()
            path = Path(tempfile.mkdtemp(prefix="tlstudio-paste-")) / "pasted.png"
            image.save(str(path))
            self.add_images([path])

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.add_images([u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()])
