"""The real main window, offscreen, for the GUI tests."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, QStandardPaths

from tlstudio.gui.main_window import MainWindow


@pytest.fixture
def window(qtbot, tmp_path):
    QStandardPaths.setTestModeEnabled(True)
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.hard_exit = lambda code: pytest.fail(f"the window would have ended the process (exit {code})")
    w.show()
    yield w
    for panel_task in (
        w.data.task,
        w.layers.task,
        w.export.task,
        w.loader,
        w.train.task,
        w.backbone.weights_box.task,
        w.backbone.look_up,
        w.try_it.task,
        w.train.form.lr_find.task,
    ):
        if panel_task is not None:
            panel_task.wait()
            assert not panel_task.is_running(), "a worker thread was left running"
