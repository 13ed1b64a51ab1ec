"""Evaluate panel: metrics, a clickable confusion matrix, the error gallery with relabel/undo and
Grad-CAM, the run history with side-by-side comparison, and the from-scratch baseline button.

A run's ``evaluation.json`` (written by the training session on the test split) is read directly:
opening the panel needs no TensorFlow. The gallery, relabelling and Grad-CAM are ``ErrorGallery``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_history import RunRecord, compare_runs, read_json
from tlstudio.gui.error_gallery import ErrorGallery
from tlstudio.gui.evaluate_models import ConfusionModel, fmt, multilabel_summary_html, summary_html
from tlstudio.gui.label_curves import LabelCurves
from tlstudio.gui.label_error_gallery import LabelErrorGallery
from tlstudio.gui.state import AppState


class EvaluatePanel(QWidget):
    """See the module docstring. ``baseline_requested`` and ``clone_requested(settings)`` go to the
    window, which owns training."""

    baseline_requested = Signal()
    clone_requested = Signal(object)  # TrainSettings
    resume_requested = Signal(object)  # RunRecord of an interrupted run
    data_changed = Signal()  # a file of the data folder moved: the Data panel scans again

    def __init__(self, parent=None, state: AppState | None = None):
        super().__init__(parent)
        self.state = state or AppState()
        self.run_dir: Path | None = None
        self.report: Path | None = None  # the shown run's report.html, when it has one
        self.evaluation: dict[str, object] = {}
        self.records: list[RunRecord] = []

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
        self.matrix.clicked.connect(self._cell_clicked)
        self.matrix.setToolTip("Click a cell to see the images behind it")
        self.matrix_title = QLabel("<b>Confusion matrix</b> — rows: true class, columns: predicted")
        self.label_curves = LabelCurves()  # a multi-label run's, in the matrix's place

        self.errors = ErrorGallery()
        self.errors.data_changed.connect(self.data_changed)
        self.label_errors = LabelErrorGallery()  # a multi-label run's gallery by label error
        self.label_errors.hide()

        top = QGridLayout()  # rows of two, so the panel fits a 1366-px laptop screen
        for i, b in enumerate(
            (
                self.compare_button,
                self.clone_button,
                self.baseline_button,
                self.report_button,
                self.resume_button,
            )
        ):
            top.addWidget(b, i // 2, i % 2)
        left = QVBoxLayout()
        left.addWidget(
            QLabel(
                "<b>Runs</b> (the selected run is the one Export, Label next and Grad-CAM use; "
                "Ctrl+click two to compare)"
            )
        )
        left.addWidget(self.runs, 2)
        left.addLayout(top)
        left.addWidget(self.matrix_title)
        left.addWidget(self.matrix, 3)
        left.addWidget(self.label_curves, 3)
        left.addWidget(self.summary, 3)
        splitter = QSplitter()
        holder = QWidget()
        holder.setLayout(left)
        splitter.addWidget(holder)
        splitter.addWidget(self.errors)
        splitter.addWidget(self.label_errors)
        splitter.setSizes([560, 640, 640])
        outer = QVBoxLayout(self)
        outer.addWidget(splitter)
        self._update_buttons()
        self.follow(self.state)

    def follow(self, state: AppState) -> None:
        """List ``state``'s runs and show its selected run from now on."""
        self.state = state
        state.subscribe("project", self._project_changed)
        state.subscribe("runs", self.refresh)
        state.subscribe("selected_run", self._show_selected)
        self._project_changed()

    def _project_changed(self) -> None:
        project = self.state.project
        self.run_dir = None
        self.report = None
        self.confusion.set_matrix([], [])
        self._show_label_curves({})
        self.summary.clear()
        self.errors.show_run(Path(), [], [])
        self.errors.setVisible(not self.label_errors.show_run(Path(), {}))
        self.errors.set_data(Path(project.data_dir) if project.data_dir else None, project.manifest_path)
        self.refresh()

    def refresh(self) -> None:
        """List the project's runs again (their folders say how each ended) and select the state's."""
        self.show_runs(self.state.runs, self.state.project.data_dir, self.state.project.manifest_path)

    # -- runs --------------------------------------------------------------------------------------
    def show_runs(self, records: list[RunRecord], data_dir: str | None, manifest_path: Path | None) -> None:
        """The project's runs, the state's selected run selected (the newest when it has none)."""
        self.records = list(records)
        self.errors.set_data(Path(data_dir) if data_dir else None, manifest_path)
        self.runs.blockSignals(True)
        self.runs.clearSelection()
        self.runs.setRowCount(len(self.records))
        for row, r in enumerate(self.records):
            values = [
                r.name,
                r.status,
                Path(r.backbone).name,
                r.weights,
                fmt(r.metrics.get("test_accuracy"))
                if "test_macro_map" not in r.metrics
                else f"mAP {fmt(r.metrics['test_macro_map'])}",  # multi-label: the test macro mAP
                fmt(r.metrics.get("test_macro_f1")),
            ]
            for col, value in enumerate(values):
                self.runs.setItem(row, col, QTableWidgetItem(value))
        self.runs.resizeColumnsToContents()
        self.runs.blockSignals(False)
        self._show_selected()

    def _show_selected(self) -> None:
        """Select the state's run in the list and show its evaluation."""
        chosen = self.state.selected_run
        rows = [i for i, r in enumerate(self.records) if r.run_dir.absolute() == chosen]
        if not rows and self.records and chosen is None:
            rows = [len(self.records) - 1]  # no run finished with a model yet: the newest
        if rows:
            if self._selected_rows() != rows:
                self.runs.selectRow(rows[0])  # (its selection change shows the evaluation)
            elif self.run_dir != self.records[rows[0]].run_dir:
                self.show_evaluation(self.records[rows[0]].run_dir)
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
            record = self.records[rows[0]]
            self.show_evaluation(record.run_dir)
            if (record.run_dir / files.MODEL).is_file():  # a run without a model cannot be used
                self.state.select_run(record.run_dir)
        self._update_buttons()

    def compare_selected(self) -> None:
        """Two selected runs side by side in the summary: the verdict on their test accuracies (paired
        on the same test images when it can be), each with its 95% interval, the settings that differ
        by the app's labels, then the metrics; every name and value escaped (core.run_history)."""
        from tlstudio.core.results.run_history import comparison_html

        rows = self._selected_rows()
        if len(rows) != 2:
            return
        result = compare_runs(self.records[rows[0]], self.records[rows[1]])
        self.summary.setHtml(comparison_html(result))

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
        self._show_label_curves(self.evaluation)
        # a multi-label run: the gallery by label error in place of the error gallery
        self.errors.setVisible(
            not self.label_errors.show_run(self.run_dir, self.evaluation, self.errors.data_dir)
        )
        if not self.evaluation:
            self.confusion.set_matrix([], [])
            self.errors.show_run(self.run_dir, [], [])
            self.summary.setHtml(
                f"<p>{self.run_dir.name} has no test evaluation (no test split, or it failed).</p>"
            )
            return
        e = self.evaluation
        if e.get("task") == "multi_label":  # no confusion matrix: a row per label instead
            self.confusion.set_matrix([], [])
            self.summary.setHtml(multilabel_summary_html(e))
            self.errors.show_run(self.run_dir, [], [])
            return
        self.confusion.set_matrix(e["labels"], e["confusion_matrix"])
        self.matrix.resizeColumnsToContents()
        self.summary.setHtml(summary_html(e))
        self.errors.show_run(self.run_dir, e["labels"], e.get("predictions", []))

    def _show_label_curves(self, evaluation: dict[str, object]) -> None:
        """A multi-label run's curves per label in place of the confusion matrix."""
        multi = self.label_curves.show_evaluation(evaluation)
        self.matrix.setHidden(multi)
        self.matrix_title.setHidden(multi)

    def _cell_clicked(self, index: QModelIndex) -> None:
        self.errors.show_cell(self.confusion.labels[index.row()], self.confusion.labels[index.column()])

    def _open_report(self) -> None:
        if self.report is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.report)))

    def _update_buttons(self) -> None:
        rows = self._selected_rows()
        self.compare_button.setEnabled(len(rows) == 2)
        self.clone_button.setEnabled(len(rows) == 1)
        self.resume_button.setEnabled(len(rows) == 1 and self.records[rows[0]].status == "interrupted")
        self.report_button.setEnabled(self.report is not None)
