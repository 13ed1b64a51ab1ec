"""The Data panel's *Label next* view: unlabelled images ranked by what a label would teach the
project's latest run (``core.training.label_next``); pick a class for each and *Add to class* copies
the file into that class folder of the data folder (the original stays; Undo deletes the copy).
Then train again. A multi-label run's suggestions show the labels it sees; a box per label chooses the
image's set, and *Add with these labels* lists it in the project's labels CSV (a copy inside the CSV's
folder when it lies outside; Undo removes both). A single-label CSV takes its one class the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.data import relabel, relabel_csv
from tlstudio.core.data.labels_csv import is_labels_csv
from tlstudio.core.settings import SUGGEST_COUNT
from tlstudio.gui.evaluate_models import GalleryModel, thumbnail_view
from tlstudio.gui.label_set import LabelChecks, shown
from tlstudio.gui.worker import Task, failure_line, was_cancelled
from tlstudio.report_text import counted


def suggest_job(run_dir: Path, folder: Path, n: int, stop: threading.Event):
    """Worker job: the suggestions of ``run_dir``'s model for ``folder``."""
    from tlstudio.core.training.label_next import suggest

    return suggest(run_dir, folder, n, stop=stop)


class LabelNextView(QWidget):
    """Suggest, assign a class (copy into the data folder), undo; ``data_changed`` after each copy."""

    data_changed = Signal()

    def __init__(self, latest_run: Callable[[], Path | None] = lambda: None, parent=None):
        super().__init__(parent)
        self.latest_run = latest_run
        self.waiting_for: Callable[[], str] = lambda: ""  # why it cannot start yet ("" when it can)
        self.data_dir: Path | None = None
        self.folder: Path | None = None
        # (copies, their sources, item) or, for a labels CSV, (LabelChange, None, item)
        self.undo_stack: list[tuple] = []
        self.multi_label = False  # the suggestions came from a multi-label run
        self.confident: list = []  # the run's surest images: candidates for pseudo-labels
        self.task: Task | None = None
        self.busy = False  # a suggestion is being computed (its thread may outlive its result by a moment)
        self._stop = threading.Event()
        self.model = GalleryModel()
        self.list = thumbnail_view(self.model)
        self.list.selectionModel().currentChanged.connect(lambda *_: self._current_changed())
        self.title = QLabel(
            "Which new images should you label first? Choose a folder of unlabelled images: the "
            "project's latest run ranks them (those it is least sure of, spread over what they show)."
        )
        self.title.setWordWrap(True)
        self.choose = QPushButton("Unlabelled folder…")
        self.choose.clicked.connect(self._ask_folder)
        self.count = QSpinBox(minimum=1, maximum=500, value=SUGGEST_COUNT)
        self.count.setToolTip("How many images to suggest")
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.clicked.connect(self.run_suggest)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(lambda: self._stop.set())
        self.classes = QComboBox()
        self.classes.setToolTip("The class of the selected image")
        self.checks = LabelChecks()  # multi-label: the labels of the selected image
        self.checks.setToolTip("The labels the selected image shows")
        self.checks.hide()
        self.add_button = QPushButton("Add to class")
        self.add_button.setToolTip("Copy the image into that class folder of your data (the original stays)")
        self.add_button.clicked.connect(self.add_current)
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo)
        self.pseudo_button = QPushButton("Pseudo-label…")
        self.pseudo_button.setToolTip(
            "Copy the images the run is sure of into CLASS/pseudo-labels/ of your data: training uses "
            "them, validation and test never do. Off unless you press this."
        )
        self.pseudo_button.clicked.connect(self.confirm_pseudo_labels)
        top = QHBoxLayout()
        for widget in (self.choose, QLabel("Images"), self.count, self.suggest_button, self.cancel):
            top.addWidget(widget)
        top.addStretch(1)
        bottom = QHBoxLayout()
        self.class_label = QLabel("Class")
        for widget in (
            self.class_label,
            self.classes,
            self.checks,
            self.add_button,
            self.undo_button,
            self.pseudo_button,
        ):
            bottom.addWidget(widget)
        bottom.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addLayout(bottom)
        self._update_buttons()

    def set_data(self, data_dir: Path | None) -> None:
        """The project's data folder (a new project: nothing shown; a suggestion under way for the
        last one is dropped with its result)."""
        if self.task is not None and self.busy:
            self._stop.set()
            self.task.retire()
            self.task = None
            self.busy = False
        self.data_dir = data_dir
        self.undo_stack.clear()
        self.confident = []
        self.model.set_items([], self.folder)
        self._update_buttons()

    def set_folder(self, folder: Path) -> None:
        """The folder of unlabelled images to rank."""
        self.folder = folder
        self.choose.setText(f"Unlabelled: {folder.name}")
        self.choose.setToolTip(str(folder))
        self._update_buttons()

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of unlabelled images")
        if folder:
            self.set_folder(Path(folder))

    def run_suggest(self) -> None:
        """Rank the unlabelled folder with the latest run, in a worker."""
        run = self.latest_run()
        if self.folder is None or self.busy:
            return
        if run is None:
            self.title.setText("<b>Train a run first</b>: its model judges which images to label next.")
            return
        if why := self.waiting_for():
            self.title.setText(why)
            return
        self._stop = threading.Event()
        stop, folder, n = self._stop, self.folder, self.count.value()
        self.title.setText(f"Ranking the images of {folder} with run {run.name}…")
        self.task = Task(lambda: suggest_job(run, folder, n, stop))
        self.task.done.connect(self.show_suggestions)
        self.task.failed.connect(self._failed)
        self.busy = True
        self._update_buttons()
        self.cancel.setEnabled(True)
        self.task.start()

    def show_suggestions(self, result) -> None:
        """The ranked images, with the run's guess and its runner-up (multi-label: its labels)."""
        self.multi_label = getattr(result, "task", "") == "multi_label"
        self.classes.setVisible(not self.multi_label)
        self.checks.setVisible(self.multi_label)
        self.class_label.setText("Labels" if self.multi_label else "Class")
        self.add_button.setText("Add with these labels" if self.multi_label else "Add to class")
        if self.multi_label:
            self.checks.set_labels(result.classes)
            self._show(result, [multilabel_item(s) for s in result.items], "tick its labels")
            return
        items = [
            {
                "path": s.path,
                "true": "?",
                "predicted": s.predicted,
                "runner_up": s.runner_up,
                "confidence": s.confidence,
            }
            for s in result.items
        ]
        self.classes.clear()
        self.classes.addItems(result.classes)
        self._show(result, items, "choose its class")

    def _show(self, result, items: list[dict], how: str) -> None:
        self.confident = list(result.confident)
        self.pseudo_button.setText(f"Pseudo-label {counted(len(self.confident), 'sure image')}…")
        self.model.set_items(items, self.folder)
        skipped = (
            f"; {len(result.skipped)} skipped (already labelled or unreadable)" if result.skipped else ""
        )
        self.title.setText(
            f"<b>Label these {len(items)} first</b> (of {result.considered}){skipped}: select one, "
            f"{how}, <i>{self.add_button.text()}</i>. Then train again."
        )
        self.busy = False
        self.cancel.setEnabled(False)
        if items:
            self.list.setCurrentIndex(self.model.index(0))
        self._update_buttons()

    def _failed(self, message: str) -> None:
        first = failure_line(message) or "failed"
        self.title.setText(
            "Cancelled." if was_cancelled(message) else f"<span style='color:#b00'>{first}</span>"
        )
        self.busy = False
        self.cancel.setEnabled(False)
        self._update_buttons()

    def _current(self) -> dict | None:
        index = self.list.currentIndex()
        return self.model.items[index.row()] if index.isValid() else None

    def _current_changed(self) -> None:
        item = self._current()
        if item is not None and self.multi_label:
            self.checks.set_checked(item.get("added_labels", item["labels"]))
        elif item is not None:
            self.classes.setCurrentText(str(item.get("added_to") or item["predicted"]))
        self._update_buttons()

    def add_current(self) -> None:
        """Copy the selected image into the chosen class folder of the data folder."""
        item = self._current()
        if item is None or self.data_dir is None or self.folder is None or item.get("added_to"):
            return
        if self.multi_label or is_labels_csv(self.data_dir):
            self._add_to_csv(item)
            return
        label = self.classes.currentText()
        try:
            copy = relabel.copy_into_class(self.data_dir, self.folder / str(item["path"]), label)
        except (relabel.RelabelError, OSError) as err:
            self.title.setText(f"<span style='color:#b00'>Not added: {err}</span>")
            return
        item["added_to"] = label
        self.undo_stack.append(([copy], [str(self.folder / str(item["path"]))], item))
        self._refresh(item)
        self.title.setText(f"Added to <b>{label}</b>: {copy} (the original stays in {self.folder.name})")
        self.data_changed.emit()

    def _add_to_csv(self, item: dict) -> None:
        """List the selected image with the chosen labels (or class) in the project's labels CSV."""
        if self.data_dir is None or self.folder is None:
            return
        labels = self.checks.checked() if self.multi_label else (self.classes.currentText(),)
        try:
            if not is_labels_csv(self.data_dir):
                raise relabel.RelabelError(
                    "a multi-label run's images are listed in a labels CSV; this project's data is a folder"
                )
            change = relabel_csv.add_image(self.data_dir, self.folder / str(item["path"]), labels)
        except (relabel.RelabelError, OSError) as err:
            self.title.setText(f"<span style='color:#b00'>Not added: {err}</span>")
            return
        item["added_to"], item["added_labels"] = shown(labels), labels
        self.undo_stack.append((change, None, item))
        self._refresh(item)
        self.title.setText(
            f"Added to {self.data_dir.name} with <b>{shown(labels)}</b>: {change.path}"
            + (f" (a copy; the original stays in {self.folder.name})" if change.copied_from else "")
        )
        self.data_changed.emit()

    def confirm_pseudo_labels(self) -> None:
        """Ask, then copy the run's surest images into the data folder as pseudo-labels."""
        if not self.confident or self.data_dir is None:
            return
        answer = QMessageBox.question(
            self,
            "Pseudo-label images?",
            f"Copy {counted(len(self.confident), 'image')} the run is sure of into CLASS/pseudo-labels/ of "
            "your data folder, each in the class the run gives it?\nTraining will use them; validation and "
            "test never do. Undo (or deleting those folders) takes them out again.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.pseudo_label()

    def pseudo_label(self) -> None:
        """Copy the run's surest images into the data folder as pseudo-labels (undoable)."""
        from tlstudio.core.training.label_next import copy_pseudo_labels

        if not self.confident or self.data_dir is None or self.folder is None:
            return
        try:
            copies = copy_pseudo_labels(self.data_dir, self.folder, self.confident)
        except (relabel.RelabelError, OSError) as err:
            self.title.setText(f"<span style='color:#b00'>Not pseudo-labelled: {err}</span>")
            return
        self.undo_stack.append((copies, [str(self.folder / s.path) for s in self.confident], None))
        self.confident = []
        self.pseudo_button.setText("Pseudo-label…")
        self.title.setText(
            f"{counted(len(copies), 'pseudo-labelled image')} copied (training only). Train again."
        )
        self._update_buttons()
        self.data_changed.emit()

    def undo(self) -> None:
        """Take the last copies back out of the data folder."""
        if not self.undo_stack or self.data_dir is None:
            return
        copies, sources, item = self.undo_stack[-1]
        try:
            if isinstance(copies, relabel_csv.LabelChange):
                relabel_csv.undo_change(self.data_dir, copies)
            else:
                for copy, source in zip(copies, sources, strict=True):
                    if (self.data_dir / copy).exists():
                        relabel.remove_copy(self.data_dir, copy, source)
        except (relabel.RelabelError, OSError) as err:
            self.title.setText(f"<span style='color:#b00'>Cannot undo: {err}</span>")
            return
        self.undo_stack.pop()
        if item is not None:
            item.pop("added_to", None)
            item.pop("added_labels", None)
            self._refresh(item)
        if isinstance(copies, relabel_csv.LabelChange):
            self.title.setText(f"Undone: {copies.path} is no longer listed in {self.data_dir.name}.")
        else:
            self.title.setText(f"Undone: {len(copies)} copied image(s) removed from the data folder.")
        self._update_buttons()
        self.data_changed.emit()

    def _refresh(self, item: dict) -> None:
        if item in self.model.items:
            self.model.refresh(self.model.items.index(item))
        self._update_buttons()

    def _update_buttons(self) -> None:
        item = self._current()
        self.suggest_button.setEnabled(self.folder is not None and not self.busy)
        self.choose.setEnabled(not self.busy)  # the results are read against the folder they came from
        self.add_button.setEnabled(
            item is not None and not item.get("added_to") and self.data_dir is not None
        )
        self.classes.setEnabled(item is not None)
        self.checks.setEnabled(item is not None and not item.get("added_to"))
        self.undo_button.setEnabled(bool(self.undo_stack))
        folder = self.data_dir is not None and not is_labels_csv(
            self.data_dir
        )  # pseudo-labels: class folders
        self.pseudo_button.setEnabled(bool(self.confident) and folder)


def multilabel_item(suggestion) -> dict[str, object]:
    """A gallery item of a multi-label run's ``LabelSuggestion``: the labels it sees, how unsure it is."""
    return {
        "path": suggestion.path,
        "true": "?",
        "predicted": shown(suggestion.predicted),
        "runner_up": suggestion.least_sure,
        "confidence": suggestion.uncertainty,
        "labels": suggestion.predicted,
    }
