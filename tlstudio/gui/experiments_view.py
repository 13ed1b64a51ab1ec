"""The Experiments view: follows a sweep (`tlstudio sweep`) from its folder while its workers run —
the trials table, the best so far, Optuna's plots and parameter importances — opens a trial's run in
Evaluate, and starts workers on this machine (stopped when the view closes).

It reads what the workers write (``core.studies.board``) every ``REFRESH_MS``: no connection to the
study's storage, so it follows a sweep whose database is on another machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from tlstudio.core.project import Project
from tlstudio.core.results.run_folder import RUN_JSON
from tlstudio.core.studies.board import Board, is_sweep, read_board
from tlstudio.core.studies.space import show_values
from tlstudio.gui.start_workers_dialog import StartWorkersDialog
from tlstudio.gui.study_plots import StudyPlots
from tlstudio.gui.sweep_workers import WorkerProcesses
from tlstudio.gui.workers_table import WorkersTable

REFRESH_MS = 2000
COLUMNS = ("#", "State", "Value", "Val. accuracy", "Parameters", "Worker", "Run")


class ExperimentsView(QDialog):
    """A sweep's trials, refreshed while it runs; *Open in Evaluate* hands a trial's run folder to
    ``open_run``."""

    def __init__(
        self,
        folder: str | Path,
        open_run: Callable[[Path], None],
        parent=None,
        project: Project | None = None,
    ):
        super().__init__(parent)
        self.folder = Path(folder)
        self.open_run = open_run
        self.project = project
        self.board: Board | None = None
        self.dialog: StartWorkersDialog | None = None
        self.setWindowTitle(f"Experiments — {self.folder.name}")
        self.resize(1000, 720)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.best = QLabel()
        self.best.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_button)
        self.table.cellDoubleClicked.connect(lambda *_: self.open_selected())
        self.open_button = QPushButton("Open in Evaluate")
        self.open_button.clicked.connect(self.open_selected)
        self.plots = StudyPlots(self.folder)
        self.processes = WorkerProcesses(self)
        self.workers = WorkersTable(self.processes)
        self.start_button = QPushButton("Start worker(s)…")
        self.start_button.clicked.connect(self.ask_to_start)
        self.stop_button = QPushButton("Stop workers")
        self.stop_button.clicked.connect(lambda: self.processes.terminate())
        self.processes.changed.connect(self._update_button)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        parts = QSplitter(Qt.Orientation.Vertical)
        for widget in (self.table, self.plots, self.workers):
            parts.addWidget(widget)
        parts.setSizes([260, 320, 100])
        layout = QVBoxLayout(self)
        for widget in (self.status, self.best, parts):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(REFRESH_MS)
        self.refresh()

    def refresh(self) -> None:
        """Read the folder again and show it (the selected trial stays selected)."""
        board = read_board(self.folder)
        self.board = board
        chosen = self.selected_row()
        self.table.setRowCount(len(board.rows))
        best = board.best["number"] if board.best else None
        for i, row in enumerate(board.rows):
            value = "" if row.get("value") is None else f"{row['value']:.4f}"
            accuracy = "" if row.get("val_accuracy") is None else f"{row['val_accuracy']:.3f}"
            run = Path(row["run_dir"]).name if row.get("run_dir") and row["state"] != "surplus" else ""
            cells = (str(row["number"]), row["state"], value, accuracy, show_values(row["params"]))
            for j, text in enumerate((*cells, row.get("worker") or "", run)):
                item = QTableWidgetItem(text)
                item.setToolTip(row.get("error") or row.get("run_dir") or "")
                if row["number"] == best:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)
        if chosen is not None:
            index = next((i for i, r in enumerate(board.rows) if r["number"] == chosen["number"]), None)
            if index is not None:
                self.table.selectRow(index)
        counts = ", ".join(f"{n} {state}" for state, n in sorted(board.counts().items()))
        done = "complete" if board.finished else "running"
        self.status.setText(f"Study '{board.study}' ({done}): {counts or 'no trial yet'} — {self.folder}")
        if not is_sweep(self.folder):
            self.status.setText(f"No sweep in {self.folder} yet: Start worker(s) to begin one here.")
        self.best.setText(self._best_words(board))
        self.plots.follow(tuple(r["number"] for r in board.rows if r["state"] == "complete"))
        self._update_button()

    def _best_words(self, board: Board) -> str:
        if board.best is None:
            return "No trial has completed yet."
        b = board.best
        words = (
            f"{'Best' if board.finished else 'Best so far'}: trial {b['number']}, value {b['value']:.4f} "
            f"({show_values(b['params']) or 'fixed settings'})"
        )
        test = (board.summary or {}).get("best", {}).get("test") or {}
        if "test_accuracy" in test:
            words += (
                f"; test accuracy {test['test_accuracy']:.3f} "
                f"[{test['test_accuracy_low']:.2f}, {test['test_accuracy_high']:.2f}], scored once"
            )
        return words

    def selected_row(self) -> dict | None:
        """The selected trial's row."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.board is None or rows[0].row() >= len(self.board.rows):
            return None
        return self.board.rows[rows[0].row()]

    def open_selected(self) -> None:
        """Hand the selected trial's run folder to ``open_run`` (a trial that has one)."""
        row = self.selected_row()
        if row is not None and self._openable(row):
            self.open_run(Path(row["run_dir"]))

    def _openable(self, row: dict) -> bool:  # (a cross-validated trial's folder holds folds, not a run)
        return row["state"] == "complete" and (Path(row.get("run_dir") or "/-") / RUN_JSON).is_file()

    def _update_button(self) -> None:
        row = self.selected_row()
        self.open_button.setEnabled(row is not None and self._openable(row))
        self.stop_button.setEnabled(bool(self.processes.running()))

    def ask_to_start(self) -> StartWorkersDialog:
        """*Start worker(s)…*: the form (window-modal); its plan starts the workers when accepted."""
        project = self.project
        self.dialog = StartWorkersDialog(
            self.folder,
            project.data_dir if project else None,
            project.settings if project and project.settings.backbone else None,
            self.board.study if self.board else "",
            self,
        )
        self.dialog.accepted.connect(lambda d=self.dialog: self.start_workers(d.plan()))
        self.dialog.open()
        return self.dialog

    def start_workers(self, plan) -> None:
        """Start the plan's workers here as child processes (``tlstudio sweep`` each)."""
        from tlstudio.core.studies.sweep import LOGS
        from tlstudio.core.studies.workers import worker_commands

        self.processes.start(worker_commands(plan), plan.out / LOGS)
        self.refresh()

    def closeEvent(self, event) -> None:
        """Never leave workers behind: asked, they are stopped (their trials run again later)."""
        running = self.processes.running()
        if running:
            answer = QMessageBox.question(
                self,
                "Workers are running",
                f"Stop the {len(running)} worker(s) started here? Their running trials fail and are run "
                "again by the next worker of the study.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.processes.stop()
        self.timer.stop()
        self.plots.stop()
        event.accept()

    def reject(self) -> None:  # (Escape closes through closeEvent, never around it)
        self.close()


def open_experiments(window, folder: str | None = None) -> ExperimentsView | None:
    """Training ▸ Experiments…: choose a sweep's folder and follow it beside the main window."""
    folder = folder or QFileDialog.getExistingDirectory(
        window, "Open a sweep's folder (tlstudio sweep --out)"
    )
    if not folder:
        return None
    if not is_sweep(folder) and any(Path(folder).iterdir()):
        QMessageBox.warning(
            window,
            "Experiments",
            f"{folder} is not a sweep's folder: it has no trials.json (tlstudio sweep); choose an empty "
            "folder to start a sweep there",
        )
        return None
    view = ExperimentsView(folder, lambda run: adopt_trial_run(window, run), window, window.state.project)
    view.show()
    return view


def adopt_trial_run(window, run_dir: Path) -> None:
    """A trial's run joins the window's project, selected, and Evaluate shows it."""
    from tlstudio.core.results.run_history import load_run

    record = load_run(run_dir)
    window.state.adopt_run(run_dir, record.status, record.metrics)
    window.go_to("Evaluate")
