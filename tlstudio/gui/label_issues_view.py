"""The Data panel's *Possible label errors* view: images whose label the chosen backbone's features
contradict (``core.training.label_issues``), each with the class they look like; *Move to* that class
or *Keep* the label, both undoable. Kept images are remembered in the project and not shown again.
Multi-label data (a labels CSV): each image with its labels and the set suggested (labels that look
missing or wrong); *Fix the labels…* asks for the set (a box per label) and writes it to the CSV.

The check runs in a worker task (features of every image, then a 5-fold probe) with a progress bar
that says the step in words, and can be cancelled: it stops at its next batch of images (or probe fit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core import events as ev
from tlstudio.core.data import relabel, relabel_csv
from tlstudio.core.data.labels_csv import data_root, is_labels_csv
from tlstudio.core.data.split import Manifest
from tlstudio.core.settings import TrainSettings
from tlstudio.gui.evaluate_models import GalleryModel, manifest_at, thumbnail_view
from tlstudio.gui.label_set import LabelSetDialog, shown
from tlstudio.gui.worker import Task, failure_line, was_cancelled
from tlstudio.gui.working import show_working
from tlstudio.report_text import counted


def check_labels_job(
    report,
    settings: TrainSettings,
    stop: threading.Event,
    on_event: Callable[[ev.Working], None] | None = None,
):
    """Worker job: the likely label errors and the off-distribution images of a scanned folder,
    judged by the project's backbone; ``on_event`` is told each step (``Working`` events)."""
    from tlstudio.core.training.label_issues import check_labels

    return check_labels(
        report,
        settings.backbone,
        weights=settings.weights,
        image_size=settings.image_size,
        stop=stop,
        on_event=on_event,
    )


TITLE = (
    "Which images look like another class? The project's backbone judges each image with a "
    "probe that never saw it (about a minute for a few hundred images on a CPU)."
)


class LabelIssuesView(QWidget):
    """Likely label errors with *Move to* / *Keep* / *Undo*; ``data_changed`` after a move,
    ``kept_changed(paths)`` when the kept list changes (the window stores it in the project)."""

    data_changed = Signal()
    kept_changed = Signal(list)
    check_requested = Signal()
    outliers_found = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.data_dir: Path | None = None  # a labels CSV's folder for a CSV
        self.csv_path: Path | None = None  # the project's labels CSV, when its data is one
        self.labels: list[str] | None = None  # multi-label data's labels (None: one class per image)
        self.manifest_path: Path | None = None
        self.kept: set[str] = set()
        self.undo_stack: list[
            tuple[str, object, dict]
        ] = []  # ("move", Move | LabelChange, item), ("keep", …)
        self.task: Task | None = None
        self._retired = False  # the task was dropped for new data: its end is not shown
        self._stop = threading.Event()
        self.model = GalleryModel()
        self.list = thumbnail_view(self.model)
        self.list.selectionModel().currentChanged.connect(lambda *_: self._update_buttons())
        self.title = QLabel(TITLE)
        self.title.setWordWrap(True)
        self.check = QPushButton("Check labels")
        self.check.clicked.connect(self.check_requested)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stops at the next batch of images")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.stop)
        self.step = QLabel("")  # the step under way, in words
        self.step.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.move_button = QPushButton("Move to the suggested class")
        self.move_button.clicked.connect(self.confirm_move)
        self.keep_button = QPushButton("Keep the label")
        self.keep_button.setToolTip("It is right: not shown again for this project")
        self.keep_button.clicked.connect(self.keep_current)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Undo the last move or keep")
        self.undo_button.clicked.connect(self.undo)
        row = QHBoxLayout()
        for button in (self.check, self.cancel, self.move_button, self.keep_button, self.undo_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(row)
        layout.addWidget(self.step)
        layout.addWidget(self.progress)
        layout.addWidget(self.list, 1)
        self._show_running(False)
        self._update_buttons()

    def set_data(self, data_dir: Path | None, manifest_path: Path | None, kept: list[str]) -> None:
        """The project's data folder, split file and kept images (a new project: nothing shown; a
        check under way is stopped and its result dropped)."""
        if self.task is not None and self.task.is_running() and not self._retired:
            self._stop.set()
            self.task.retire()  # (kept in ``task`` until it ends, so the window can wait for it)
            self._retired = True
            self.title.setText(TITLE)
        self._show_running(False)
        self.csv_path = data_dir if data_dir is not None and is_labels_csv(data_dir) else None
        self.data_dir = data_root(data_dir) if data_dir is not None else None
        self.manifest_path, self.kept = manifest_path, set(kept)
        self.undo_stack.clear()
        self.model.set_items([], self.data_dir)
        self._update_buttons()

    def run_check(self, report, settings: TrainSettings, on_done: Callable[[], None] | None = None) -> None:
        """Check the labels of ``report``'s images with ``settings``' backbone, in a worker; the bar
        follows its steps."""
        if self.task is not None and self.task.is_running() and not self._retired:
            return
        self._stop = threading.Event()
        self._retired = False
        stop = self._stop
        multi = getattr(report, "task", "") == "multi_label"
        self.labels = list(report.classes) if multi else None
        self.move_button.setText("Fix the labels…" if multi else "Move to the suggested class")
        self.keep_button.setText("Keep the labels" if multi else "Keep the label")
        labels = counted(len(report.images), "image's labels" if multi else "label")
        self.title.setText(f"Checking {labels} with {Path(settings.backbone).name}…")
        self.step.setText("Loading the backbone…")
        self.progress.setRange(0, 0)  # busy until the first count
        self.task = Task(lambda task: check_labels_job(report, settings, stop, task.report), with_report=True)
        self.task.event.connect(self._progress)
        self.task.done.connect(self.show_issues)
        self.task.failed.connect(self._failed)
        if on_done is not None:
            self.task.done.connect(lambda _: on_done())
        self._show_running(True)
        self.task.start()

    def stop(self) -> None:
        """Cancel a running check: it stops at its next batch of images, and says so at once."""
        self._stop.set()
        if self.cancel.isEnabled():
            self.cancel.setEnabled(False)
            self.step.setText("Cancelling (at the next batch of images)…")

    def _progress(self, event) -> None:
        """A ``Working`` event of the check: the step in words, done of total on the bar."""
        if isinstance(event, ev.Working) and not self._stop.is_set():
            show_working(event, self.step, self.progress)

    def _show_running(self, running: bool) -> None:
        self.check.setEnabled(not running)
        self.cancel.setEnabled(running)
        self.step.setVisible(running)
        self.progress.setVisible(running)
        if not running:
            self.step.setText("")
            self.progress.setRange(0, 1)
            self.progress.setValue(0)

    def show_issues(self, found) -> None:
        """The issues, most likely first, without the images kept before; the off-distribution images
        go out through ``outliers_found`` (the Data panel lists them with the quality findings)."""
        issues, outliers = found
        self.outliers_found.emit(list(outliers))
        listed = [i for i in issues if i.path not in self.kept]
        multi = bool(listed) and hasattr(listed[0], "missing")
        items = [multilabel_item(i) if multi else single_label_item(i) for i in listed]
        self.model.set_items(items, self.data_dir)
        hidden = len(issues) - len(listed)
        how = "labels → suggested labels, label quality" if multi else "labelled → looks like, probability"
        self.title.setText(
            f"<b>{len(listed)} possible label error(s)</b>, most likely first ({how})"
            + (f"; {hidden} kept earlier not shown" if hidden else "")
            + (
                ". Look at each: fix its labels, or keep them."
                if multi
                else ". Look at each: move it, or keep its label."
            )
            if listed
            else "No possible label errors: every label agrees with the backbone's judgement."
        )
        self._show_running(False)
        self._update_buttons()

    def _failed(self, message: str) -> None:
        first = failure_line(message) or "failed"
        self.title.setText(
            "Label check cancelled." if was_cancelled(message) else f"<span style='color:#b00'>{first}</span>"
        )
        self._show_running(False)

    def _current(self) -> dict | None:
        index = self.list.currentIndex()
        return self.model.items[index.row()] if index.isValid() else None

    def confirm_move(self) -> None:
        """Ask, then move the selected image into the class it looks like."""
        item = self._current()
        if item is None:
            return
        if "given" in item:  # multi-label: ask for the set
            dialog = LabelSetDialog(
                str(item["path"]), self.labels or [], item["given"], item["suggested"], self
            )
            if dialog.exec() == LabelSetDialog.DialogCode.Accepted:
                self.fix_current(dialog.checks.checked())
            return
        where = (
            f"Give {item['path']} the label '{item['predicted']}' in your labels CSV?"
            if self.csv_path is not None
            else f"Move {item['path']} into the class folder '{item['predicted']}' of your data folder?"
        )
        answer = QMessageBox.question(
            self, "Move the image?", f"{where}\nThe project's split follows; Undo puts it back."
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.move_current()

    def move_current(self) -> None:
        """Move the selected image into its suggested class (the project's manifest follows)."""
        item = self._current()
        if item is None or self.data_dir is None or item.get("moved_to"):
            return
        if self.csv_path is not None:  # a single-label CSV: its row takes the class, the file stays
            self.fix_current((str(item["predicted"]),))
            return
        try:
            move, _ = relabel.move_to_class(
                self.data_dir,
                str(item["path"]),
                str(item["predicted"]),
                manifest=self._manifest(),
                manifest_path=self.manifest_path,
            )
        except (relabel.RelabelError, OSError) as err:
            self.title.setText(f"<span style='color:#b00'>Not moved: {err}</span>")
            return
        item["path"], item["moved_to"] = move.new_path, move.new_label
        self.undo_stack.append(("move", move, item))
        self._refresh(item)
        self.title.setText(f"Moved to <b>{move.new_label}</b>: {move.new_path}")
        self.data_changed.emit()

    def fix_current(self, labels) -> None:
        """Give the selected image of a labels CSV these labels (the CSV and the project's split follow)."""
        item = self._current()
        if item is None or self.csv_path is None or item.get("moved_to"):
            return
        try:
            change, _ = relabel_csv.set_labels(
                self.csv_path,
                str(item["path"]),
                labels,
                expected=item.get("given", (str(item["true"]),)),
                manifest=self._manifest(),
                manifest_path=self.manifest_path,
            )
        except (relabel.RelabelError, OSError) as err:
            self.title.setText(f"<span style='color:#b00'>Not fixed: {err}</span>")
            return
        item["moved_to"] = shown(change.new)
        self.undo_stack.append(("move", change, item))
        self._refresh(item)
        self.title.setText(f"Labels of {change.path} now: <b>{shown(change.new)}</b> (written to the CSV)")
        self.data_changed.emit()

    def keep_current(self) -> None:
        """The label is right: remember it in the project and take the image off the list."""
        item = self._current()
        if item is None or item.get("moved_to"):
            return
        path = str(item["path"])
        self.kept.add(path)
        self.undo_stack.append(("keep", path, item))
        self.model.set_items([i for i in self.model.items if i is not item], self.data_dir)
        self.title.setText(f"Kept {path} as {item['true']}: not shown again for this project.")
        self.kept_changed.emit(sorted(self.kept))
        self._update_buttons()

    def undo(self) -> None:
        """Undo the last move (the file goes back) or keep (the image is listed again)."""
        if not self.undo_stack:
            return
        kind, what, item = self.undo_stack.pop()
        if kind == "keep":
            self.kept.discard(str(what))
            self.model.set_items([item, *self.model.items], self.data_dir)
            self.kept_changed.emit(sorted(self.kept))
            self.title.setText(f"{what} is listed again.")
        else:
            manifest = {"manifest": self._manifest(), "manifest_path": self.manifest_path}
            try:
                if isinstance(what, relabel_csv.LabelChange):
                    relabel_csv.undo_change(self.csv_path, what, **manifest)
                else:
                    relabel.undo(self.data_dir, what, **manifest)
            except (relabel.RelabelError, OSError) as err:
                self.undo_stack.append((kind, what, item))
                self.title.setText(f"<span style='color:#b00'>Cannot undo: {err}</span>")
                return
            back = isinstance(what, relabel_csv.LabelChange)
            item["path"] = what.path if back else what.old_path
            item["moved_to"] = None
            self._refresh(item)
            self.title.setText(f"Labels back: {what.path}" if back else f"Moved back: {what.old_path}")
            self.data_changed.emit()
        self._update_buttons()

    def _refresh(self, item: dict) -> None:
        for row, other in enumerate(self.model.items):
            if other is item:
                self.model.refresh(row)
        self._update_buttons()

    def _manifest(self) -> Manifest | None:
        return manifest_at(self.manifest_path)

    def _update_buttons(self) -> None:
        item = self._current()
        movable = item is not None and not item.get("moved_to")
        self.move_button.setEnabled(movable)
        self.keep_button.setEnabled(movable)
        self.undo_button.setEnabled(bool(self.undo_stack))


def single_label_item(issue) -> dict[str, object]:
    """A gallery item of a ``LabelIssue``."""
    return {
        "path": issue.path,
        "true": issue.given,
        "predicted": issue.suggested,
        "confidence": issue.confidence,
        "confident": issue.confident,
    }


def multilabel_item(issue) -> dict[str, object]:
    """A gallery item of a ``MultiLabelIssue``: its label sets in words, and as sets for the fix."""
    return {
        "path": issue.path,
        "true": shown(issue.given),
        "predicted": shown(issue.suggested),
        "confidence": issue.quality,
        "confident": issue.confident,
        "given": issue.given,
        "suggested": issue.suggested,
    }
