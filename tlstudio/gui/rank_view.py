"""The Backbone panel's *Rank on my data*: candidates scored on the project's training images
(``core.training.ranking``: a cross-validated linear probe, k-NN and LogME on frozen features) in a
worker, best first; double-click a row to choose that backbone. On multi-label data the probe and
k-NN columns are macro mAP, and their header says so.

Every candidate is checked first, in the worker (``core.training.rank_check``): when any cannot be
ranked, nothing is started, each bad one is a red row with its reason, and *Drop these* removes them
from the candidates. A candidate that fails during its work is a red row with its reason after the
ranked ones, which are kept.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from tlstudio.gui.worker import Task, failure_line, was_cancelled

if TYPE_CHECKING:
    from tlstudio.core.training.ranking import RankedBackbone

COLUMNS = ("", "Backbone", "Probe accuracy", "95% interval", "k-NN", "LogME", "Parameters", "ms / image")
SCORE_HEADERS = {"accuracy": ("Probe accuracy", "k-NN"), "macro_map": ("Probe macro mAP", "k-NN mAP")}
"""The probe's and k-NN's column headers for each ``RankedBackbone.metric``."""


FAILED = QColor("#b00")


def rank_job(report, names: list[str], weights: str, image_size: int | None, stop: threading.Event, say=None):
    """Worker job: the candidates ranked on the scanned folder's training split (the failed ones
    last, with their ``error``), or the ``CandidateProblems`` found before any was built;
    ``say(words)`` is told each step (which candidate, which stage)."""
    from tlstudio.core.training.rank_check import CandidateProblems
    from tlstudio.core.training.ranking import rank_backbones

    def counted(done: int, total: int) -> None:
        if say is not None:
            say((done, total))

    try:
        return rank_backbones(
            report,
            names,
            weights=weights,
            image_size=image_size,
            stop=stop,
            progress=say,
            counted=counted,
        )
    except CandidateProblems as problems:  # a result, not a failure: the view lists them
        return problems


INTRO = (
    "Scores each candidate's frozen features of your training images: the accuracy a frozen-backbone "
    "model would reach (cross-validated; macro mAP for multi-label data), k-NN and LogME. '=' marks "
    "candidates your data cannot tell apart from the best. It predicts the frozen start, not the "
    "fine-tuned end."
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
        self.drop_bad = QPushButton("Drop these")
        self.drop_bad.setToolTip("Remove the candidates that cannot be ranked (red rows) from the list")
        self.drop_bad.clicked.connect(self._drop_bad)
        self.drop_bad.setVisible(False)
        self._bad: list[str] = []
        self.status = QLabel(INTRO)
        self.status.setWordWrap(True)
        self.progress = QProgressBar()  # the current candidate's images, while its features are computed
        self.progress.setFormat("%v / %m images")
        self.progress.setVisible(False)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(self._pick)
        self.table.setMaximumHeight(150)
        row = QHBoxLayout()
        row.addWidget(self.candidates, 1)
        for button in (self.add_chosen, self.rank_button, self.cancel, self.drop_bad):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.table)

    def reset(self) -> None:
        """Nothing of another data folder or project: its ranking (or the one under way) is dropped."""
        if self.task is not None:
            self._stop.set()
            self.task.retire()
            self.task = None
        self._done()
        self._show_bad([])
        self.table.clearSpans()
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
        self.task.event.connect(lambda event: self._progressed(len(names), event))
        self.task.done.connect(self._finished)
        self.task.failed.connect(self._failed)
        self.busy = True
        self.rank_button.setEnabled(False)
        self.cancel.setEnabled(True)
        self._show_bad([])
        self.status.setText(
            f"Checking the {len(names)} candidates, then ranking them on your training images…"
        )
        self.task.start()

    def _progressed(self, candidates: int, event) -> None:
        """A step in words (the status line) or images counted (the bar)."""
        if isinstance(event, tuple):
            done, total = event
            self.progress.setVisible(True)
            self.progress.setMaximum(max(total, 1))
            self.progress.setValue(done)
        elif not self._stop.is_set():  # (once Cancel is pressed, the line says so until the end)
            self.status.setText(f"Ranking {candidates} candidates: {event}…")
            self.progress.setValue(0)

    def _cancel(self) -> None:
        """Stop at the candidate's next batch; said at once, since that can take a few seconds."""
        self._stop.set()
        self.cancel.setEnabled(False)
        self.status.setText("Cancelling (at the current candidate's next batch)…")

    def _finished(self, result) -> None:
        """The worker's result: a ranking, or the candidates found bad before any work."""
        from tlstudio.core.training.rank_check import CandidateProblems

        if isinstance(result, CandidateProblems):
            self.show_problems(result.problems)
        else:
            self.show_ranking(result)

    def show_problems(self, problems: list[tuple[str, str]]) -> None:
        """Candidates that cannot be ranked, found before any work: nothing was started; each is a
        red row with its reason, and *Drop these* removes them from the candidates."""
        self._fill([(name, None, reason) for name, reason in problems])
        self._show_bad([name for name, _ in problems])
        self.status.setText(
            f"<b>Nothing was ranked: {len(problems)} of {len(self.names())} candidates cannot be</b> "
            "(red rows, each with its reason). Fix them, or press <i>Drop these</i> and rank the others."
        )
        self._done()

    def show_ranking(self, ranked) -> None:
        """The ranking, best first; candidates that failed during their work after it, in red."""
        probe, knn = SCORE_HEADERS[ranked[0].metric if ranked else "accuracy"]
        self.table.setHorizontalHeaderLabels([*COLUMNS[:2], probe, COLUMNS[3], knn, *COLUMNS[5:]])
        self._fill([(r.backbone, r, r.error) for r in ranked])
        done = [r for r in ranked if r.error is None]
        failed = len(ranked) - len(done)
        tied = sum(1 for r in done if r.tied_with_best)
        images = ranked[0].images if ranked else 0
        lost = (
            f"<span style='color:#b00'><b>{failed} of {len(ranked)} candidate(s) failed</b> during their "
            "work</span> (red rows, each with its reason); the others are ranked. "
            if failed
            else ""
        )
        if not done:
            verdict = "No candidate could be ranked. "
        elif tied > 1:
            verdict = (
                f"<b>{tied} candidates are indistinguishable</b> on this data ('='): more images would "
                "separate them. "
            )
        else:
            verdict = (
                f"<b>{html.escape(Path(done[0].backbone).name)}</b> is ahead beyond doubt on this data. "
            )
        what = " by macro mAP (multi-label)" if ranked and ranked[0].metric == "macro_map" else ""
        self.status.setText(
            f"Ranked on {images} training images{what}. "
            + lost
            + verdict
            + ("Double-click a row to choose it." if done else "")
        )
        self._done()

    def _fill(self, rows: list[tuple[str, RankedBackbone | None, str | None]]) -> None:
        """One row per (candidate, its ranking or None, why it failed or None)."""
        self.table.clearSpans()
        self.table.setRowCount(len(rows))
        for row, (name, r, error) in enumerate(rows):
            if error is not None:
                cells: tuple[str, ...] = ("✗", Path(name).name, error)
            else:
                assert r is not None
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
                    item.setToolTip(name)
                    item.setData(Qt.ItemDataRole.UserRole, error)
                elif error is not None:
                    item.setToolTip(error)
                elif col > 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if error is not None:
                    item.setForeground(QBrush(FAILED))
                self.table.setItem(row, col, item)
            for col in range(len(cells), len(COLUMNS)):
                self.table.setItem(row, col, QTableWidgetItem(""))
        self.table.resizeColumnsToContents()
        for row, (_, _, error) in enumerate(rows):  # the reason across the score columns
            if error is not None:
                self.table.setSpan(row, 2, 1, len(COLUMNS) - 2)

    def failed_row(self, row: int) -> str | None:
        """Why the candidate of this row could not be ranked (None: it was)."""
        item = self.table.item(row, 1)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _pick(self, row: int, _column: int = 0) -> None:
        """A double-click chooses the row's backbone; a red row's cannot be ranked, so it is not."""
        item = self.table.item(row, 1)
        if item is not None and self.failed_row(row) is None:
            self.picked.emit(item.toolTip())

    def _show_bad(self, names: list[str]) -> None:
        self._bad = names
        self.drop_bad.setVisible(bool(names))

    def _drop_bad(self) -> None:
        """Remove the candidates found bad before the ranking; the rest can be ranked again."""
        bad = set(self._bad)
        self.candidates.setText(", ".join(n for n in self.names() if n not in bad))
        self._show_bad([])
        self.table.clearSpans()
        self.table.setRowCount(0)
        self.status.setText(
            f"Dropped {len(bad)} candidate(s); {len(self.names())} left. Press <i>Rank on my data</i>."
        )

    def _failed(self, message: str) -> None:
        first = failure_line(message) or "failed"
        self.status.setText(
            "Cancelled." if was_cancelled(message) else f"<span style='color:#b00'>{first}</span>"
        )
        self._done()

    def _done(self) -> None:
        self.progress.setVisible(False)
        self.busy = False
        self.rank_button.setEnabled(True)
        self.cancel.setEnabled(False)
