"""The Data panel's *Possible label errors* view: check, move (and undo), keep (remembered)."""

from __future__ import annotations

import shutil

from PIL import Image
from PySide6.QtWidgets import QMessageBox

from tlstudio.core.project import Project
from tlstudio.core.settings import TrainSettings

LONG = 120_000


def test_label_check_moves_keeps_and_remembers(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, monkeypatch
):
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    wrong = sorted((data / "red").glob("*"))[0]
    wrong.rename(data / "blue" / f"was_red_{wrong.name}")
    flipped = f"blue/was_red_{wrong.name}"
    Image.new("RGB", (32, 32)).save(data / "green" / "black_frame.png")  # unlike every other image
    project = Project(
        path=tmp_path / "p.tlstudio.json",
        data_dir=str(data),
        settings=TrainSettings(backbone=str(tiny_backbone_file)),
    )
    window.set_project(project)
    qtbot.waitUntil(lambda: window.backbone.ready and window.data.report is not None, timeout=LONG)
    qtbot.waitUntil(lambda: not window.missing_steps(), timeout=LONG)
    view = window.data.label_issues
    view.check.click()
    qtbot.waitUntil(lambda: view.check.isEnabled() and bool(view.model.items), timeout=LONG)
    first = next(i for i in view.model.items if i["path"] == flipped)
    assert (first["true"], first["predicted"]) == ("blue", "red")
    assert view.model.items.index(first) <= 1  # the black frame may look like no colour, too
    quality = window.data.quality
    rows = [(quality.item(r, 0).text(), quality.item(r, 2).text()) for r in range(quality.rowCount())]
    frame = [finding.split(":")[0] for path, finding in rows if path == "green/black_frame.png"]
    assert frame == ["very dark", "off-distribution"]  # the doctor's finding, then the label check's
    assert window.data.tabs.tabText(2) == f"Look-alikes && quality ({len(rows)})"
    assert "possible label error" in view.title.text()

    view.list.setCurrentIndex(view.model.index(view.model.items.index(first)))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    view.move_button.click()
    moved = data / "red" / f"was_red_{wrong.name}"
    assert moved.is_file() and first["moved_to"] == "red"
    assert not view.move_button.isEnabled()  # a moved image is not moved or kept again
    view.undo_button.click()
    assert (data / flipped).is_file() and not moved.exists()

    view.keep_button.click()  # on second thought the label is right: kept, remembered, not shown again
    assert flipped not in [i["path"] for i in view.model.items]
    assert Project.load(project.path).kept_labels == [flipped]
    view.check.click()
    qtbot.waitUntil(lambda: view.check.isEnabled(), timeout=LONG)
    assert flipped not in [i["path"] for i in view.model.items]
    view.undo_button.click()  # undo the keep: listed again, forgotten by the project
    assert flipped in [i["path"] for i in view.model.items[:2]]
    assert Project.load(project.path).kept_labels == []


def test_a_label_check_can_be_cancelled(window, qtbot, tmp_path, colour_data, tiny_backbone_file):
    window.set_project(
        Project(
            path=tmp_path / "c.tlstudio.json",
            data_dir=str(colour_data),
            settings=TrainSettings(backbone=str(tiny_backbone_file)),
        )
    )
    qtbot.waitUntil(lambda: not window.missing_steps(), timeout=LONG)
    view = window.data.label_issues
    view.check.click()
    view.cancel.click()
    qtbot.waitUntil(lambda: view.check.isEnabled(), timeout=LONG)
    assert "cancelled" in view.title.text() and not view.model.items  # (stops at its first batch)
