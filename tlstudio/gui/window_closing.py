"""Closing the main window: a running training is stopped (or, if it will not stop within seconds,
recorded as interrupted and left resumable), background tasks end, the project and window are saved."""

from __future__ import annotations

import os
import time

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QMessageBox

QUIT_WAIT_MS = 2500  # quitting during a run takes at most about this long


class ClosesSafely:
    """Mixin of ``MainWindow`` (its panels, tasks and settings)."""

    def closeEvent(self, event) -> None:
        from tlstudio.gui.experiments_view import ExperimentsView

        for view in self.findChildren(ExperimentsView):  # sweep workers started here: asked, then stopped
            if view.processes.running() and not view.close():
                event.ignore()
                return
        if self.train.is_running():
            answer = QMessageBox.question(
                self, "Training is running", "Stop training (keeping the best weights so far) and quit?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.train.request_stop()
            if not self.train.wait(QUIT_WAIT_MS):
                self._quit_now()  # still in a long batch or exporting: leave it resumable, go now
                return
            deadline = time.monotonic() + 2
            while self.train.is_running() and time.monotonic() < deadline:  # deliver the run's result
                QCoreApplication.processEvents()
        self.data.label_issues.stop()  # a label check stops at its next batch
        self.train.form.lr_find.stop()
        self.try_it.stop_live()
        for task in (
            self.loader,
            self.sample_task,
            self.backbone.weights_box.task,
            self.data.task,
            self.layers.task,
            self.export.task,
            self.evaluate.errors.task,
            self.try_it.task,
            self.train.form.lr_find.task,
            self.data.label_issues.task,
        ):
            if task is not None:
                task.wait()
        self._remember_window()
        event.accept()

    def _remember_window(self) -> None:
        self.save_project()
        self.train.curves.renderer.stop()
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self.qsettings.sync()

    def _quit_now(self) -> None:
        """Quit within seconds while the run's thread is still busy: the run is recorded as
        interrupted (its last finished epoch is checkpointed: Resume continues it) and the process
        ends without waiting for the thread (Qt would abort on a running QThread at exit)."""
        if self.train.run_dir is not None:
            self.project.record_run(self.train.run_dir, "interrupted", {})
        self._remember_window()
        self.hard_exit(0)

    hard_exit = staticmethod(os._exit)  # tests replace it
