"""Data panel: choose or drop a folder (or a labels CSV, multi-label or not), see the dataset doctor's
report, set the split.

The panel follows the app's state (``gui.state.AppState``): the project's data folder and its report
live there, and the panel shows whatever the state holds (nothing, after a new project)."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.data.health import DatasetReport
from tlstudio.core.data.labels_csv import is_labels_csv
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.source import inspect_data
from tlstudio.core.settings import SEED, TEST_FRACTION, VAL_FRACTION, TrainSettings
from tlstudio.gui.class_bars import ClassBars
from tlstudio.gui.label_issues_view import LabelIssuesView
from tlstudio.gui.label_next_view import LabelNextView
from tlstudio.gui.quality_view import QualityView
from tlstudio.gui.state import AppState
from tlstudio.gui.worker import Task, failure_line
from tlstudio.report_text import counted, multi_label_summary

THUMBS_PER_CLASS = 6
NO_FOLDER_TEXT = "No data folder yet: choose one, or drop it here."


class DataPanel(QWidget):
    """Shows a data folder's health; emits ``report_ready`` when a scan of the project's folder
    finished (and the state took it)."""

    report_ready = Signal(object)  # DatasetReport
    split_changed = Signal()

    def __init__(self, parent=None, state: AppState | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.state = state or AppState()  # a panel of its own (tests) follows a state of its own
        self.task: Task | None = None

        self.folder_label = QLabel(NO_FOLDER_TEXT)
        self.folder_label.setWordWrap(True)
        self.choose = QPushButton("Choose folder…")
        self.choose.setToolTip("A folder with one sub-folder per class (Ctrl+D)")
        self.choose.setShortcut("Ctrl+D")
        self.choose.clicked.connect(self._ask_folder)
        self.choose_csv = QPushButton("Choose labels CSV…")
        self.choose_csv.setToolTip(
            "A CSV with the header path,labels: one row per image, its labels joined by ';' (several, or "
            "none: multi-label)"
        )
        self.choose_csv.clicked.connect(self._ask_csv)
        self.rescan = QPushButton("Scan again")
        self.rescan.setEnabled(False)
        self.rescan.clicked.connect(lambda: self.load(self.folder) if self.folder else None)
        top = QHBoxLayout()
        top.addWidget(self.folder_label, 1)
        top.addWidget(self.rescan)
        top.addWidget(self.choose)
        top.addWidget(self.choose_csv)
        self.cancel = QPushButton("Cancel scan")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.cancel_scan)
        top.addWidget(self.cancel)

        self.classes = QTableWidget(0, 3)
        self.classes.setHorizontalHeaderLabels(["Class", "Images", "Suggested weight"])
        self.classes.horizontalHeader().setStretchLastSection(True)
        self.classes.verticalHeader().setVisible(False)
        self.classes.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.classes.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.classes.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.classes.itemSelectionChanged.connect(self._show_thumbs)
        self.chart = ClassBars()
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setIconSize(QPixmap(72, 72).size())
        self.thumbs.setMaximumHeight(120)
        self.skipped = QTableWidget(0, 2)
        self.skipped.setHorizontalHeaderLabels(["Skipped file", "Reason"])
        self.skipped.horizontalHeader().setStretchLastSection(True)
        self.skipped.verticalHeader().setVisible(False)
        self.skipped.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.warnings = QListWidget()
        self.warnings.setWordWrap(True)
        tabs = QTabWidget()
        tabs.addTab(self.warnings, "Warnings")
        tabs.addTab(self.skipped, "Skipped files")
        self.quality = QualityView()
        tabs.addTab(self.quality, "Look-alikes && quality")
        self.label_issues = LabelIssuesView()
        self.label_issues.outliers_found.connect(self._show_outliers)
        tabs.addTab(self.label_issues, "Possible label errors")
        self.label_next = LabelNextView()
        tabs.addTab(self.label_next, "Label next")
        self.tabs = tabs

        self.val = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=0.5, singleStep=0.05, value=VAL_FRACTION)
        self.test = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=0.5, singleStep=0.05, value=TEST_FRACTION)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=SEED)
        for box, tip in (
            (self.val, "Share of each class held out to choose the best epoch"),
            (self.test, "Share of each class held out for the final, honest score"),
            (self.seed, "Same seed, same files: the split is reproducible"),
        ):
            box.setToolTip(tip)
            box.valueChanged.connect(self.split_changed)
        split = QFormLayout()
        split.addRow("Validation share", self.val)
        split.addRow("Test share", self.test)
        split.addRow("Split seed", self.seed)
        split_box = QWidget()
        split_box.setLayout(split)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.classes, 3)
        self.multi_label = QLabel()  # a multi-label CSV's labels per image and co-occurrence
        self.multi_label.setWordWrap(True)
        self.multi_label.hide()
        left_layout.addWidget(self.multi_label)
        self.thumbs_title = QLabel("Thumbnails of the selected class")
        left_layout.addWidget(self.thumbs_title)
        left_layout.addWidget(self.thumbs)
        left_layout.addWidget(split_box)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.chart, 2)
        right_layout.addWidget(tabs, 3)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([450, 550])

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        self.follow(self.state)

    def follow(self, state: AppState) -> None:
        """Show ``state``'s data folder and report from now on (the window's one state)."""
        self.state = state
        state.subscribe("project", self.reset)
        self.reset()

    @property
    def report(self) -> DatasetReport | None:
        """The report of the project's data folder (the state's)."""
        return self.state.report

    @property
    def folder(self) -> str | None:
        """The project's data folder."""
        return self.state.project.data_dir

    def reset(self) -> None:
        """Show nothing of a previous project: its scan is dropped, every list emptied."""
        if self.task is not None:
            self.task.retire()
            self.task = None
        self.folder_label.setText(NO_FOLDER_TEXT)
        self.choose.setEnabled(True)
        self.rescan.setEnabled(False)
        self.cancel.setEnabled(False)
        for table in (self.classes, self.skipped, self.quality):
            table.setRowCount(0)
        self.thumbs.clear()
        self.warnings.clear()
        self.tabs.setTabText(0, "Warnings")
        self.tabs.setTabText(1, "Skipped files")
        self.tabs.setTabText(2, "Look-alikes && quality")
        self._draw_chart()

    # -- loading ------------------------------------------------------------------------------------
    def show_settings(self, s: TrainSettings) -> None:
        """Show the split settings of a project."""
        self.val.setValue(s.val_fraction)
        self.test.setValue(s.test_fraction)
        self.seed.setValue(s.seed)

    def apply_to(self, s: TrainSettings) -> TrainSettings:
        """Settings with this panel's split values."""
        return s.but(val_fraction=self.val.value(), test_fraction=self.test.value(), seed=self.seed.value())

    def load(self, folder: str) -> None:
        """Scan ``folder`` in a worker thread."""
        if self.task is not None and self.task.is_running():
            self.task.retire()  # another folder (or a rescan) replaces the scan under way
        self.state.set_data_dir(folder)
        self.folder_label.setText(f"<b>{folder}</b> — scanning…")
        self.choose.setEnabled(False)
        # One reader thread: more of them compete with the GUI thread for the GIL (stalls of 300 ms).
        self.task = Task(
            lambda task: inspect_data(
                folder, workers=1, on_progress=lambda d, t: task.report((d, t)), stop=task.stop_token
            ),
            with_report=True,
        )
        self.task.event.connect(self._scan_progress)
        self.task.done.connect(self._show)
        self.task.failed.connect(self._failed)
        self.cancel.setEnabled(True)
        self.task.start()

    def cancel_scan(self) -> None:
        """Stop the scan under way (the panel keeps what it showed before)."""
        if self.task is not None and self.task.is_running():
            self.task.stop()

    def _scan_progress(self, event) -> None:
        done, total = event
        self.folder_label.setText(f"<b>{self.folder}</b> — scanning… {done:,} of {total:,} files")

    def _ask_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a labels CSV (path,labels)", "", "Labels CSV (*.csv)"
        )
        if path:
            self.load(path)

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the data folder (one sub-folder per class)")
        if folder:
            self.load(folder)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and (Path(urls[0].toLocalFile()).is_dir() or is_labels_csv(urls[0].toLocalFile())):
            self.load(urls[0].toLocalFile())

    def _failed(self, message: str) -> None:
        self.choose.setEnabled(True)
        self.cancel.setEnabled(False)
        self.folder_label.setText(f"<b>{self.folder}</b> — could not be scanned: {failure_line(message)}")

    def _show(self, report: DatasetReport) -> None:
        self.cancel.setEnabled(False)
        self.choose.setEnabled(True)
        if not self.state.set_report(report):  # a scan of a folder the project no longer uses
            return
        self.rescan.setEnabled(True)
        status = (
            "usable" if report.usable else f"<span style='color:#b00'>not usable: {report.problem}</span>"
        )
        self.folder_label.setText(
            f"<b>{report.source}</b> — "
            f"{counted(len(report.classes), 'label' if report.task == 'multi_label' else 'class')}, "
            f"{counted(len(report.images), 'image')}, {len(report.skipped)} skipped; {status}"
        )
        self.classes.setRowCount(len(report.classes))
        for row, (label, n) in enumerate(report.classes.items()):
            for col, value in enumerate((label, n, f"{report.class_weights.get(label, 0):.2f}")):
                item = QTableWidgetItem(str(value))
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.classes.setItem(row, col, item)
        self.classes.resizeColumnsToContents()
        multi = report.task == "multi_label"
        self.classes.setHorizontalHeaderLabels(["Label" if multi else "Class", "Images", "Suggested weight"])
        self.multi_label.setVisible(multi)
        self.thumbs_title.setText(f"Thumbnails of the selected {'label' if multi else 'class'}")
        self.classes.setColumnHidden(2, False)  # (multi-label: each label's positive weight, if balanced)
        self.multi_label.setText(
            "<br>".join(html.escape(x) for x in multi_label_summary(report)) if multi else ""
        )
        self.skipped.setRowCount(len(report.skipped))
        for row, item in enumerate(report.skipped):
            self.skipped.setItem(row, 0, QTableWidgetItem(item.path))
            self.skipped.setItem(row, 1, QTableWidgetItem(item.reason))
        self.skipped.resizeColumnToContents(0)
        self.warnings.clear()
        for text in report.warnings or ["No warnings: the folder looks healthy."]:
            self.warnings.addItem(QListWidgetItem(("⚠ " if report.warnings else "✓ ") + text))
        self.tabs.setTabText(1, f"Skipped files ({len(report.skipped)})")
        self._show_outliers([])
        self.tabs.setTabText(0, f"Warnings ({len(report.warnings)})")
        self._draw_chart()
        if report.classes:
            self.classes.selectRow(0)
        self.report_ready.emit(report)

    def _show_outliers(self, outliers: list) -> None:
        """The quality tab with the label check's off-distribution images (none before it runs)."""
        if self.report is not None:
            found = self.quality.show_report(self.report, outliers)
            self.tabs.setTabText(2, f"Look-alikes && quality ({found})")

    def _draw_chart(self) -> None:
        self.chart.set_counts(dict(self.report.classes) if self.report else {})

    def _show_thumbs(self) -> None:
        self.thumbs.clear()
        rows = self.classes.selectionModel().selectedRows()
        if not self.report or not rows:
            return
        label = self.classes.item(rows[0].row(), 0).text()
        for record in self.report.images_of(label)[:THUMBS_PER_CLASS]:
            pixmap = QPixmap(str(in_folder(self.report.root, record.path)))
            if not pixmap.isNull():
                item = QListWidgetItem(QIcon(pixmap.scaled(72, 72, Qt.AspectRatioMode.KeepAspectRatio)), "")
                item.setToolTip(record.path)
                self.thumbs.addItem(item)
