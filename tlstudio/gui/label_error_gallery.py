"""The Evaluate panel's gallery by label error, for a multi-label run: choose a label, see the test
images it missed and those it was given falsely, the most wrong first, and Grad-CAM of that label.

Which images are wrong, and their order, come from ``core.results.label_errors``; the thumbnails, the
placeholder of an image that is not there, and the Grad-CAM worker are the error gallery's.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QListView, QPushButton, QVBoxLayout, QWidget

from tlstudio.core.data.labels_csv import data_root
from tlstudio.core.data.scan import in_folder
from tlstudio.core.results.label_errors import LabelErrors, label_error_counts, label_errors
from tlstudio.core.results.run_folder import run_status
from tlstudio.gui.error_gallery import CAM_HINT, RunGalleryModel, gradcam_finished, gradcam_job, start_gradcam
from tlstudio.gui.evaluate_models import NOT_FOUND, thumbnail_view
from tlstudio.gui.try_panel import to_pixmap
from tlstudio.gui.worker import Task


class LabelErrorModel(RunGalleryModel):
    """One label's wrong images: each thumbnail captioned with the label's probability and threshold."""

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            sign = "<" if item["kind"] == "missed" else "≥"
            return (
                f"{Path(str(item['path'])).name}\np {item['probability']:.2f} {sign} {item['threshold']:.2f}"
            )
        if role == Qt.ItemDataRole.ToolTipRole:
            text = (
                f"{item['path']}\ntrue: {', '.join(item['true']) or 'none'}\n"
                f"given: {', '.join(item['predicted']) or 'none'}\n"
                f"{item['label']}: p = {item['probability']:.3f}, threshold {item['threshold']:.3f}"
            )
            if self.locate(str(item["path"])) is None:
                text += f"\n({NOT_FOUND} in the run's or the project's data folder)"
            return text
        return super().data(index, role)


class LabelErrorGallery(QWidget):
    """See the module docstring. Hidden unless the run shown is multi-label."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.roots: list[Path] = []  # where the run's images are looked for, in order
        self.predictions: list[dict] = []
        self.thresholds: dict[str, float] = {}
        self.errors: LabelErrors | None = None
        self.task: Task | None = None
        self.label = QComboBox()
        self.label.setToolTip("The label whose missed and false images the gallery shows")
        self.label.activated.connect(lambda _: self.show_label(self.label.currentData()))
        self.cam_button = QPushButton("Grad-CAM")
        self.cam_button.setToolTip("Where the model looks for the chosen label (its own sigmoid output)")
        self.cam_button.clicked.connect(self.show_gradcam)
        self.missed_model = LabelErrorModel(self.image_path)
        self.false_model = LabelErrorModel(self.image_path)
        self.missed_title, self.false_title = QLabel(), QLabel()
        self.missed_view = thumbnail_view(self.missed_model)
        self.false_view = thumbnail_view(self.false_model)
        for view, other in ((self.missed_view, self.false_view), (self.false_view, self.missed_view)):
            view.selectionModel().currentChanged.connect(
                lambda current, _, other=other: self._selection_changed(other, current.isValid())
            )
        self.preview = QLabel(CAM_HINT)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setWordWrap(True)
        self.preview.setMinimumSize(200, 200)
        tools = QHBoxLayout()
        tools.addWidget(QLabel("<b>Errors by label</b>"))
        tools.addWidget(self.label, 1)
        tools.addWidget(self.cam_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(tools)
        for title, view in ((self.missed_title, self.missed_view), (self.false_title, self.false_view)):
            layout.addWidget(title)
            layout.addWidget(view, 2)
        layout.addWidget(self.preview, 2)
        self._update_buttons()

    def show_run(self, run_dir: Path, evaluation: dict, data_dir: str | Path | None = None) -> bool:
        """Show a run's evaluation when it is multi-label (then it shows itself; else it hides).

        Args:
            run_dir: the run's folder (its model for Grad-CAM, its run.json for its data folder).
            evaluation: its ``evaluation.json`` (``predictions`` and ``thresholds``).
            data_dir: the project's data source (a folder or a labels CSV), where images are looked
                for after the run's own data folder.

        Returns:
            Whether the run is multi-label.
        """
        multi = evaluation.get("task") == "multi_label" and bool(evaluation.get("thresholds"))
        self.run_dir = Path(run_dir)
        self.predictions = list(evaluation.get("predictions") or []) if multi else []
        self.thresholds = dict(evaluation.get("thresholds") or {}) if multi else {}
        recorded = run_status(run_dir).get("data_dir") if multi else None
        recorded = recorded if isinstance(recorded, str) and recorded else None
        self.roots = [Path(r) for r in (recorded, data_dir and data_root(data_dir)) if r]
        for model in (self.missed_model, self.false_model):
            model.forget_thumbnails()
        self.label.clear()
        problem = ""
        try:
            counts = label_error_counts(self.predictions, self.thresholds)
        except (ValueError, KeyError, TypeError) as err:  # an evaluation.json edited or cut short
            self.thresholds, counts, problem = {}, {}, str(err)
        for name, (missed, false) in counts.items():
            self.label.addItem(f"{name}: {missed} missed, {false} false", name)
        self.show_label(self.label.currentData() if self.thresholds else None)
        if problem:
            self.missed_title.setText(
                f"<span style='color:#b00'>Cannot read the run's predictions: {escape(problem)}</span>"
            )
        self.setVisible(multi)
        return multi

    def show_label(self, label: str | None) -> None:
        """The label's missed and false images, the farthest from its threshold first."""
        if label is not None and self.label.currentData() != label:
            self.label.setCurrentIndex(self.label.findData(label))
        self.errors = label_errors(self.predictions, self.thresholds, label) if label else None
        missed = self.errors.missed if self.errors else []
        false = self.errors.false if self.errors else []
        self.missed_model.set_items(list(missed), None)
        self.false_model.set_items(list(false), None)
        name = escape(label or "")
        t = f"{self.errors.threshold:.2f}" if self.errors else "—"
        self.missed_title.setText(
            f"<b>Missed</b>: true {name}, probability below its threshold {t}: {len(missed)} image(s), "
            "most wrong first"
        )
        self.false_title.setText(
            f"<b>False</b>: {name} given (at or above {t}), not true: {len(false)} image(s), most wrong first"
        )
        self._selection_changed(None, False)

    def image_path(self, rel: str) -> Path | None:
        """The file of a record's relative path: in the run's data folder, else the project's."""
        for root in self.roots:
            if (path := in_folder(root, rel)).is_file():
                return path
        return None

    def current_item(self) -> dict | None:
        """The selected image's record (in either list), or None."""
        for view, model in ((self.missed_view, self.missed_model), (self.false_view, self.false_model)):
            index = view.currentIndex()
            if index.isValid() and view.selectionModel().isSelected(index):
                return model.items[index.row()]
        return None

    def _selection_changed(self, other: QListView | None, selected: bool) -> None:
        """One image at a time: a selection in one list clears the other's; a shown Grad-CAM goes."""
        if other is not None and selected:
            other.selectionModel().clear()
        if self.task is not None:
            self.task.retire()
        self.cam_button.setText("Grad-CAM")
        self.preview.clear()
        self.preview.setText(CAM_HINT)
        self.preview.setToolTip("")
        self._update_buttons()

    def show_gradcam(self) -> None:
        """Grad-CAM of the selected image for the chosen label, in a worker (pressed again: cancel)."""
        if self.task is not None and self.cam_button.text() != "Grad-CAM":
            self.task.retire()
            self._cam_finished("Grad-CAM cancelled.")
            return
        item = self.current_item()
        if item is None or self.run_dir is None:
            return
        run_dir, label, path = self.run_dir, str(item["label"]), self.image_path(str(item["path"]))
        self.task = start_gradcam(
            self.preview,
            self.cam_button,
            path,
            str(item["path"]),
            lambda: gradcam_job(run_dir, path, label),
            lambda result: self._show_overlay(result, item),
        )

    def _cam_finished(self, text: str | None = None) -> None:
        gradcam_finished(self.preview, self.cam_button, text)

    def _show_overlay(self, result, item: dict) -> None:
        self._cam_finished()
        pixels, prob = result
        self.preview.setPixmap(to_pixmap(pixels))
        self.preview.setToolTip(
            f"Grad-CAM for '{item['label']}' (p = {prob:.2f}, threshold {item['threshold']:.2f})"
        )

    def _update_buttons(self) -> None:
        item = self.current_item()
        self.cam_button.setEnabled(item is not None and self.image_path(str(item["path"])) is not None)
