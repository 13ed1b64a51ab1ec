"""Try it: images dropped or pasted on the panel are classified by the selected run, with the top
classes, the confidence against the test split's record, and a Grad-CAM overlay."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from tlstudio.core.project import Project
from tlstudio.core.results.try_it import Tryout, image_files
from tlstudio.gui.state import AppState
from tlstudio.gui.try_panel import TryPanel

pytestmark = pytest.mark.slow
LONG = 120_000


@pytest.fixture
def panel(qtbot, tmp_path, probe_run, colour_data):
    project = Project(
        path=tmp_path / "p.tlstudio.json", data_dir=str(shutil.copytree(colour_data, tmp_path / "d"))
    )
    project.record_run(probe_run, "completed", {})
    state = AppState(project)
    assert state.selected_run == probe_run.absolute()
    widget = TryPanel(state=state)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    if widget.task is not None:
        widget.task.wait()


def drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    widget.dropEvent(event)


def test_a_dropped_image_shows_the_top_classes_the_record_and_a_gradcam_overlay(
    panel, qtbot, colour_data, tmp_path
):
    red = sorted((colour_data / "red").iterdir())[0]
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    drop(panel, [red, not_an_image])
    assert panel.images.count() == 2 and "Trying run" in panel.title.text()
    qtbot.waitUntil(lambda: not panel.task.is_running() and not panel.pending, timeout=LONG)
    qtbot.waitUntil(lambda: all("…" not in panel.images.item(i).text() for i in range(2)), timeout=5000)
    first = panel.images.item(0)
    assert first.text().startswith(red.name + "\n") and first.text().split("\n")[1].split()[0] in {
        "red",
        "green",
        "blue",
    }
    panel.images.setCurrentRow(0)
    words = panel.verdict.text()
    assert "probability" in words and "on the test split" in words and words.count("0.") >= 3  # top-3 listed
    picture = panel.picture.pixmap()
    assert not picture.isNull() and str(red) in panel.pictures
    assert max(picture.width(), picture.height()) <= 360
    assert panel.images.item(1).text().endswith("cannot read")
    panel.images.setCurrentRow(1)
    assert "Cannot read" in panel.verdict.text()


def test_the_tryout_agrees_with_the_run_and_its_heat_map_is_a_map(probe_run, colour_data):
    tryout = Tryout(probe_run)
    blue = sorted((colour_data / "blue").iterdir())[:3]
    verdicts = [tryout.classify(p) for p in blue]
    assert all(abs(sum(p for _, p in v.top) - 1.0) < 0.2 for v in verdicts)  # top-3 of 3 classes: ≈ 1
    assert all(
        v.heat is not None and v.heat.ndim == 2 and 0 <= v.heat.min() <= v.heat.max() <= 1 for v in verdicts
    )
    record = tryout.test_record(0.0)
    assert record.total == len(tryout.predictions) > 0 and 0 <= record.low <= record.high <= 1
    assert image_files([colour_data / "blue"]) == sorted((colour_data / "blue").iterdir())


def test_a_pasted_image_is_tried_and_can_be_copied_into_a_class(panel, qtbot):
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[..., 2] = 230  # blue
    image = QImage(pixels.data, 40, 40, 120, QImage.Format.Format_RGB888).copy()
    QApplication.clipboard().setImage(image)
    panel.paste()
    qtbot.waitUntil(lambda: panel.task is not None and not panel.task.is_running(), timeout=LONG)
    qtbot.waitUntil(lambda: "…" not in panel.images.item(0).text(), timeout=5000)
    panel.images.setCurrentRow(0)
    predicted = panel.images.item(0).text().split("\n")[1].split()[0]
    assert panel.classes.currentText() == predicted  # the copy goes to the predicted class by default
    changed = []
    panel.data_changed.connect(lambda: changed.append(True))
    panel.classes.setCurrentText("blue")
    panel.copy_current()
    copies = [p.name for p in (Path(panel.state.project.data_dir) / "blue").iterdir()]
    assert changed and any(name.startswith("pasted") for name in copies)


def test_without_a_run_the_panel_says_what_to_do(qtbot, tmp_path):
    widget = TryPanel(state=AppState(Project(path=tmp_path / "p.tlstudio.json")))
    qtbot.addWidget(widget)
    assert "Train a run first" in widget.title.text() and not widget.add_files.isEnabled()
