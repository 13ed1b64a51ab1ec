"""The Backbone panel's *Rank on my data*: candidates scored on the project's training images
(``core.training.ranking``: a cross-validated linear probe, k-NN and LogME on frozen features) in a
worker, best first; double-click a row to choose that backbone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from tlstudio.gui.worker import Task

COLUMNS = ("", "Backbone", "Probe accuracy", "95% interval", "k-NN", "LogME", "Parameters", "ms / image")


def rank_job(report, names: list[str], weights: str, image_size: int | None, stop: threading.Event, say=None):
    """Worker job: the candidates ranked on the scanned folder's training split; ``say(words)`` is
    told each step (which candidate, which stage)."""
    from tlstudio.core.training.ranking import rank_backbones

    return rank_backbones(report, names, weights=weights, image_size=image_size, stop=stop, progress=say)


INTRO = (
    "Scores each candidate's frozen features of your training images: the accuracy a frozen-backbone "
    "model would reach (cross-validated), k-NN and LogME. '=' marks candidates your data cannot tell "
    "apart from the best. It predicts the frozen start, not the fine-tuned end."
)


class RankView(QGroupBox):
    """Candidates, *Rank on my data*, and the ranking; ``picked(name)`` on a double-click."""

    picked = Signal(str)

    def __init__(self, parent=None):
        super().__init__("Rank on my data (before training)", parent)
        self.report_source: Callable[[], object | None] = lambda: None
        self.settings_source: Callable[[], tuple[str, int | None]] = lambda: ("imagenet", None)
        self.waiting_for: Callable[[], str] = lambda: ""
        self.task: Task | None = None
        self.busy = False
        self._stop = threading.Event()
        self.candidates = QLineEdit(placeholderText="Candidates: names or model files, comma-separated")
        self.add_chosen = QPushButton("Add chosen")
        self.add_chosen.setToolTip("Add the backbone chosen above to the candidates")
        self.rank_button = QPushButton("Rank on my data")
        self.rank_button.clicked.connect(self.run_rank)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self._cancel)
        self.status = QLabel(INTRO)
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(
            lambda row, _: self.picked.emit(self.table.item(row, 1).toolTip())
        )
        self.table.setMaximumHeight(150)
        row = QHBoxLayout()
        row.addWidget(self.candidates, 1)
        for button in (self.add_chosen, self.rank_button, self.cancel):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.table)

    def reset(self) -> None:
        """Nothing of another data folder or project: its ranking (or the one under way) is dropped."""
        if self.task is not None:
            self._stop.set()
            self.task.retire()
            self.task = None
        self._done()
        self.table.setRowCount(0)
        self.status.setText(INTRO)

    def names(self) -> list[str]:
        """The candidates as typed, in order, without repeats."""
        seen: list[str] = []
        for name in (n.strip() for n in self.candidates.text().split(",")):
            if name and name not in seen:
                seen.append(name)
        return seen

    def add(self, name: str) -> None:
        """Add a candidate (once)."""
        if name and name not in self.names():
            self.candidates.setText(", ".join([*self.names(), name]))

    def run_rank(self) -> None:
        """Rank the candidates on the project's scanned data, in a worker."""
        names, report = self.names(), self.report_source()
        if self.busy:
            return
        if len(names) < 2:
            self.status.setText("<b>Name at least two candidates</b> (or press <i>Add chosen</i> for each).")
            return
        if report is None or not getattr(report, "usable", False):
            self.status.setText("<b>Choose a usable data folder first</b> (Data panel).")
            return
        if why := self.waiting_for():
            self.status.setText(why)
            return
        weights, size = self.settings_source()
        self._stop = threading.Event()
        stop = self._stop
        self.task = Task(
            lambda task: rank_job(report, names, weights, size, stop, task.report), with_report=True
        )
        self.task.event.connect(
            lambda words: self.status.setText(f"Ranking {len(names)} candidates: {words}…")
        )
        self.task.done.connect(self.show_ranking)
        self.task.failed.connect(self._failed)
        self.busy = True
        self.rank_button.setEnabled(False)
        self.cancel.setEnabled(True)
        self.status.setText(f"Ranking {len(names)} candidates on your training images…")
        self.task.start()

    def _cancel(self) -> None:
        """Stop at the candidate's next batch; said at once, since that can take a few seconds."""
        self._stop.set()
        self.cancel.setEnabled(False)
        self.status.setText("Cancelling (at the current candidate's next batch)…")

    def show_ranking(self, ranked) -> None:
        """The ranking, best first."""
        self.table.setRowCount(len(ranked))
        for row, r in enumerate(ranked):
            cells = (
                "=" if r.tied_with_best else "",
                Path(r.backbone).name,
                f"{r.score:.3f}",
                f"{r.interval[0]:.2f}–{r.interval[1]:.2f}",
                f"{r.knn:.3f}",
                f"{r.logme:.3f}",
                f"{r.parameters:,}",
                f"{r.ms_per_image:.1f}",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 1:
                    item.setToolTip(r.backbone)
                elif col > 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        tied = sum(1 for r in ranked if r.tied_with_best)
        images = ranked[0].images if ranked else 0
        self.status.setText(
            f"Ranked on {images} training images. "
            + (
                f"<b>{tied} candidates are indistinguishable</b> on this data ('='): more images would "
                "separate them. "
                if tied > 1
                else f"<b>{Path(ranked[0].backbone).name}</b> is ahead beyond doubt on this data. "
            )
            + "Double-click a row to choose it."
        )
        self._done()

    def _failed(self, message: str) -> None:
        first = message.splitlines()[0] if message else "failed"
        self.status.setText(
            "Cancelled." if "cancelled" in first else f"<span style='color:#b00'>{first}</span>"
        )
        self._done()

    def _done(self) -> None:
        self.busy = False
        self.rank_button.setEnabled(True)
        self.cancel.setEnabled(False)
