"""Sweep workers on this machine as child processes of the app (QProcess): started from their command
lines (``core.studies.workers``), each shown running, finished or failed with its one-line reason,
and stopped with SIGTERM (each fails its trial, which another worker runs again)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from tlstudio.core.studies.workers import failure_reason

STOP_WAIT_MS = 45_000  # a stopped worker ends its trial's process (which may take 30 s) then itself
STDERR_KEPT = 8000  # characters of a worker's stderr kept for its reason


@dataclass
class Worker:
    """One worker process and what it has said."""

    number: int
    command: list[str]
    process: QProcess
    stderr: str = ""
    state: str = "starting"  # starting, running, finished, failed, stopped
    reason: str = ""
    pid: int = field(default=0)


class WorkerProcesses(QObject):
    """The workers this window started; ``changed`` is emitted whenever one's state changes."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.workers: list[Worker] = []

    def start(self, commands: list[list[str]], logs: Path) -> None:
        """Start one process per command line; its stdout goes to ``logs/worker-N.out``."""
        logs.mkdir(parents=True, exist_ok=True)
        for command in commands:
            process = QProcess(self)
            worker = Worker(len(self.workers) + 1, command, process)
            process.setStandardOutputFile(
                str(logs / f"app-worker-{worker.number}.out"), QProcess.OpenModeFlag.Append
            )
            process.readyReadStandardError.connect(lambda w=worker: self._read(w))
            process.started.connect(lambda w=worker: self._started(w))
            process.finished.connect(lambda code, status, w=worker: self._finished(w, code, status))
            process.errorOccurred.connect(lambda error, w=worker: self._error(w, error))
            self.workers.append(worker)
            process.start(command[0], command[1:])
        self.changed.emit()

    def running(self) -> list[Worker]:
        """The workers whose process is alive."""
        return [w for w in self.workers if w.process.state() != QProcess.ProcessState.NotRunning]

    def terminate(self) -> list[Worker]:
        """SIGTERM every running worker without waiting (*Stop workers*); one still running
        ``STOP_WAIT_MS`` later is killed. Returns the workers asked to stop."""
        alive = self.running()
        for worker in alive:
            worker.state = "stopping"
            worker.process.terminate()
        self.changed.emit()
        QTimer.singleShot(STOP_WAIT_MS, self, lambda: self._kill(alive))
        return alive

    def _kill(self, workers: list[Worker]) -> None:
        for worker in workers:
            if worker.process.state() != QProcess.ProcessState.NotRunning:
                worker.process.kill()

    def stop(self, wait_ms: int = STOP_WAIT_MS) -> None:
        """SIGTERM every running worker and wait for them (killed when they outstay ``wait_ms``)."""
        for worker in self.terminate():
            if not worker.process.waitForFinished(wait_ms):
                worker.process.kill()
                worker.process.waitForFinished(5000)

    def _read(self, worker: Worker) -> None:
        text = bytes(worker.process.readAllStandardError().data()).decode("utf-8", "replace")
        worker.stderr = (worker.stderr + text)[-STDERR_KEPT:]

    def _started(self, worker: Worker) -> None:
        worker.pid = int(worker.process.processId())
        if worker.state == "starting":  # (not one stopped while it was starting)
            worker.state = "running"
        self.changed.emit()

    def _finished(self, worker: Worker, code: int, status: QProcess.ExitStatus) -> None:
        self._read(worker)
        crashed = status == QProcess.ExitStatus.CrashExit
        if code == 0 and not crashed:
            worker.state, worker.reason = "finished", "the study is complete"
        else:
            worker.reason = failure_reason(code, worker.stderr, crashed)
            worker.state = "stopped" if worker.state == "stopping" else "failed"
        self.changed.emit()

    def _error(self, worker: Worker, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            worker.state, worker.reason = "failed", f"could not start {worker.command[0]}"
            self.changed.emit()
