"""The workers this window started, one row each: its number, process id, device, state and, for one
that ended, why (its one-line reason)."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from tlstudio.gui.sweep_workers import Worker, WorkerProcesses

WORKER_COLUMNS = ("Worker", "PID", "Device", "State", "Why")


def device_of(worker: Worker) -> str:
    """The ``--device`` a worker was given (``auto`` without one)."""
    command = worker.command
    return command[command.index("--device") + 1] if "--device" in command else "auto"


class WorkersTable(QTableWidget):
    """Follows a ``WorkerProcesses``: rewritten whenever a worker's state changes."""

    def __init__(self, processes: WorkerProcesses, parent=None):
        super().__init__(0, len(WORKER_COLUMNS), parent)
        self.processes = processes
        self.setHorizontalHeaderLabels(WORKER_COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        processes.changed.connect(self.show_workers)
        self.show_workers()

    def show_workers(self) -> None:
        """One row per worker, as it stands now."""
        workers = self.processes.workers
        self.setRowCount(len(workers))
        self.setVisible(bool(workers))
        for i, w in enumerate(workers):
            cells = (str(w.number), str(w.pid or ""), device_of(w), w.state, w.reason)
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(w.stderr[-2000:] if j == 4 else " ".join(w.command))
                self.setItem(i, j, item)
