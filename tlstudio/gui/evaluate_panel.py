"""Evaluate panel: metrics, a clickable confusion matrix, the error gallery with relabel/undo and
Grad-CAM, the run history with side-by-side comparison, and the from-scratch baseline button.

A run's ``evaluation.json`` (written by the training session on the test split) is read directly:
opening the panel needs no TensorFlow. Grad-CAM loads the run's ``model.keras`` in a worker task.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6.QtCore import QModelIndex, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QLabel,
    QListView,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.data import relabel
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import Manifest
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import cell_predictions, ordered_errors
from tlstudio.core.results.run_history import RunRecord, compare_runs, read_json
from tlstudio.gui.evaluate_models import THUMB, ConfusionModel, GalleryModel, fmt, summary_html
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


class EvaluatePanel(QWidget):
    """See the module docstring. ``baseline_requested`` and ``clone_requested(settings)`` go to the
    window, which owns training."""

    baseline_requested = Signal()
    clone_requested = Signal(object)  # TrainSettings
    resume_requested = Signal(object)  # RunRecord of an interrupted run
    data_changed = Signal()  # a file of the data folder moved: the Data panel scans again

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.report: Path | None = None  # the shown run's report.html, when it has one
        self.data_dir: Path | None = None
        self.manifest_path: Path | None = None
        self.evaluation: dict[str, object] = {}
        self.records: list[RunRecord] = []
        self.undo_stack: list[tuple[relabel.Move, int]] = []
        self.task: Task | None = None

        self.runs = QTableWidget(0, 6)
        self.runs.setHorizontalHeaderLabels(["run", "status", "backbone", "weights", "test acc", "macro F1"])
        self.runs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs.verticalHeader().hide()
        self.runs.horizontalHeader().setStretchLastSection(True)
        self.runs.itemSelectionChanged.connect(self._run_selected)
        self.compare_button = QPushButton("Compare two selected runs")
        self.compare_button.clicked.connect(self.compare_selected)
        self.clone_button = QPushButton("Clone settings into a new run")
        self.clone_button.clicked.connect(self._clone)
        self.baseline_button = QPushButton("Train from-scratch baseline")
        self.baseline_button.setToolTip(
            "Same architecture from random weights, every layer trained, same data, split and epoch "
            "budget — did transfer help?"
        )
        self.baseline_button.clicked.connect(self.baseline_requested)
        self.resume_button = QPushButton("Resume interrupted run")
        self.resume_button.setToolTip(
            "Continue a run whose process died (killed, out of disk…) from its last finished epoch"
        )
        self.resume_button.clicked.connect(self._resume)
        self.report_button = QPushButton("Open report")
        self.report_button.clicked.connect(self._open_report)

        self.summary = QTextBrowser()
        self.summary.setPlaceholderText("Metrics of the selected run's test split appear here.")
        self.confusion = ConfusionModel()
        self.matrix = QTableView()
        self.matrix.setModel(self.confusion)
        self.matrix.clicked.connect(self.show_cell)
        self.matrix.setToolTip("Click a cell to see the images behind it")

        self.gallery_model = GalleryModel()
        self.gallery = QListView()
        self.gallery.setModel(self.gallery_model)
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMB, THUMB))
        self.gallery.setGridSize(QSize(THUMB + 40, THUMB + 54))
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setWordWrap(True)
        self.gallery.selectionModel().currentChanged.connect(lambda *_: self._update_buttons())
        self.gallery_title = QLabel("Gallery")
        self.order = QComboBox()
        self.order.addItems(list(ORDERS))
        self.order.activated.connect(lambda _: self.show_errors())
        self.target = QComboBox()
        self.move_button = QPushButton("Move to class")
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

        top = QGridLayout()  # two rows, so the panel fits a 1366-px laptop screen
        for i, b in enumerate(
            (self.compare_button, self.clone_button, self.baseline_button, self.report_button)
        ):
            top.addWidget(b, i // 2, i % 2)
        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Runs</b> (select one; Ctrl+click two to compare)"))
        left.addWidget(self.runs, 2)
        left.addLayout(top)
        left.addWidget(QLabel("<b>Confusion matrix</b> — rows: true class, columns: predicted"))
        left.addWidget(self.matrix, 3)
        left.addWidget(self.summary, 3)
        tools = QGridLayout()
        for i, w in enumerate(
            (self.order, self.target, self.move_button, self.undo_button, self.folder_button, self.cam_button)
        ):
            tools.addWidget(w, i // 3, i % 3)
        right = QVBoxLayout()
        right.addWidget(self.gallery_title)
        right.addLayout(tools)
        right.addWidget(self.gallery, 3)
        right.addWidget(self.preview, 2)
        splitter = QSplitter()
        for layout in (left, right):
            holder = QWidget()
            holder.setLayout(layout)
            splitter.addWidget(holder)
        splitter.setSizes([560, 640])
        outer = QVBoxLayout(self)
        outer.addWidget(splitter)
        self._update_buttons()

    # -- runs --------------------------------------------------------------------------------------
    def show_runs(self, records: list[RunRecord], data_dir: str | None, manifest_path: Path | None) -> None:
        """The project's runs, newest selected."""
        self.records = list(records)
        self.data_dir = Path(data_dir) if data_dir else None
        self.manifest_path = manifest_path
        self.runs.setRowCount(len(self.records))
        for row, r in enumerate(self.records):
            values = [
                r.name,
                r.status,
                Path(r.backbone).name,
                str(r.settings.get("weights", "")),
                fmt(r.metrics.get("test_accuracy")),
                fmt(r.metrics.get("test_macro_f1")),
            ]
            for col, value in enumerate(values):
                self.runs.setItem(row, col, QTableWidgetItem(value))
        self.runs.resizeColumnsToContents()
        if self.records:
            self.runs.selectRow(len(self.records) - 1)
        self._update_buttons()

    def _resume(self) -> None:
        rows = self._selected_rows()
        if len(rows) == 1 and self.records[rows[0]].status == "interrupted":
            self.resume_requested.emit(self.records[rows[0]])

    def _selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.runs.selectionModel().selectedRows()})

    def _run_selected(self) -> None:
        rows = self._selected_rows()
        if len(rows) == 1:
            self.show_evaluation(self.records[rows[0]].run_dir)
        self._update_buttons()

    def compare_selected(self) -> None:
        """Two selected runs side by side in the summary: settings that differ, then metrics."""
        rows = self._selected_rows()
        if len(rows) != 2:
            return
        result = compare_runs(self.records[rows[0]], self.records[rows[1]])
        a, b = result["runs"]
        html = [f"<h3>{a} vs {b}</h3><p>Same data: <b>{'yes' if result['same_data'] else 'no'}</b></p>"]
        html.append(f"<table border=1 cellpadding=3><tr><th>setting</th><th>{a}</th><th>{b}</th></tr>")
        html += [
            f"<tr><td>{d['setting']}</td><td>{d[a]}</td><td>{d[b]}</td></tr>" for d in result["settings_diff"]
        ]
        html.append(
            f"</table><br><table border=1 cellpadding=3><tr><th>metric</th><th>{a}</th><th>{b}</th></tr>"
        )
        html += [
            f"<tr><td>{m['metric']}</td><td>{fmt(m[a])}</td><td>{fmt(m[b])}</td></tr>"
            for m in result["metrics"]
        ]
        self.summary.setHtml("".join(html) + "</table>")

    def _clone(self) -> None:
        rows = self._selected_rows()
        if len(rows) == 1 and self.records[rows[0]].settings:
            self.clone_requested.emit(self.records[rows[0]].train_settings())

    # -- one run's evaluation ---------------------------------------------------------------------
    def show_evaluation(self, run_dir: Path) -> None:
        """Read a run's evaluation.json into the matrix, the summary and the gallery."""
        self.run_dir = Path(run_dir)
        report = self.run_dir / files.REPORT
        self.report = report if report.is_file() else None
        self.evaluation = read_json(self.run_dir / files.EVALUATION)
        if not self.evaluation:
            self.confusion.set_matrix([], [])
            self.gallery_model.set_items([], None)
            self.summary.setHtml(
                f"<p>{self.run_dir.name} has no test evaluation (no test split, or it failed).</p>"
            )
            return
        e = self.evaluation
        self.confusion.set_matrix(e["labels"], e["confusion_matrix"])
        self.matrix.resizeColumnsToContents()
        self.target.clear()
        self.target.addItems(e["labels"])
        self.summary.setHtml(summary_html(e))
        self.show_errors()

    def show_cell(self, index: QModelIndex) -> None:
        """The images behind one confusion-matrix cell."""
        true, predicted = self.confusion.labels[index.row()], self.confusion.labels[index.column()]
        items = cell_predictions(self.evaluation.get("predictions", []), true, predicted)
        self.gallery_title.setText(f"<b>True {true}, predicted {predicted}</b>: {len(items)} image(s)")
        self.gallery_model.set_items(items, self.data_dir)
        self._update_buttons()

    def show_errors(self) -> None:
        """The error gallery in the chosen order."""
        items = ordered_errors(self.evaluation.get("predictions", []), ORDERS[self.order.currentText()])
        self.gallery_title.setText(f"<b>{self.order.currentText()}</b>: {len(items)} image(s)")
        self.gallery_model.set_items(items, self.data_dir)
        self._update_buttons()

    # -- acting on an image ------------------------------------------------------------------------
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
        if self.manifest_path is not None and self.manifest_path.is_file():
            return Manifest.load(self.manifest_path)
        return None

    def show_gradcam(self) -> None:
        """Grad-CAM of the selected image for its predicted class, in a worker."""
        current = self._current()
        if current is None or self.run_dir is None or self.data_dir is None:
            return
        if self.task is not None and self.task.is_running():
            return
        _, item = current
        path = in_folder(self.data_dir, str(item["path"]))
        self.preview.setText("Computing Grad-CAM…")
        self.task = Task(lambda: gradcam_job(self.run_dir, path, str(item["predicted"])))
        self.task.done.connect(lambda result: self._show_overlay(result, item))
        self.task.failed.connect(lambda msg: self.preview.setText("Grad-CAM: " + msg.splitlines()[0]))
        self.task.start()

    def _show_overlay(self, result, item) -> None:
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

    def _open_report(self) -> None:
        if self.report is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.report)))

    def _update_buttons(self) -> None:
        rows = self._selected_rows()
        has_image = self.gallery.currentIndex().isValid()
        self.compare_button.setEnabled(len(rows) == 2)
        self.clone_button.setEnabled(len(rows) == 1)
        self.resume_button.setEnabled(len(rows) == 1 and self.records[rows[0]].status == "interrupted")
        self.report_button.setEnabled(self.report is not None)
        for button in (self.move_button, self.folder_button, self.cam_button):
            button.setEnabled(has_image)
        self.undo_button.setEnabled(bool(self.undo_stack))
