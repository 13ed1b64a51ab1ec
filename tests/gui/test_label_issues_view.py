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


def _view_and_report(qtbot, colour_data):
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.gui.label_issues_view import LabelIssuesView

    view = LabelIssuesView()
    qtbot.addWidget(view)
    view.show()
    view.set_data(colour_data, None, [])
    return view, inspect_folder(colour_data)


def test_the_label_check_shows_its_steps_on_a_progress_bar(qtbot, colour_data, tiny_backbone_file):
    view, report = _view_and_report(qtbot, colour_data)
    assert not view.progress.isVisible()  # idle: no bar
    view.run_check(report, TrainSettings(backbone=str(tiny_backbone_file)))
    assert view.progress.isVisible() and view.cancel.isEnabled() and not view.check.isEnabled()
    seen: list[tuple[str, int, int]] = []
    view.task.event.connect(  # (after the view's own handler: what the view shows for each event)
        lambda _: seen.append((view.step.text(), view.progress.value(), view.progress.maximum()))
    )
    task = view.task
    qtbot.waitUntil(lambda: view.check.isEnabled(), timeout=LONG)
    assert not task.is_running() or task.wait(5000)
    images = len(report.images)
    features = [(v, m) for text, v, m in seen if text.startswith("Computing")]
    assert (images, images) in features and any(0 < v < m for v, m in features), seen  # it moved
    fits = [(v, m) for text, v, m in seen if text.startswith("Scoring")]
    assert fits and fits[-1][0] == fits[-1][1] > 1, seen  # the probe's fits counted too
    assert "possible label error" in view.title.text() or "No possible label errors" in view.title.text()
    assert not view.progress.isVisible() and not view.cancel.isEnabled()


def test_cancel_is_acknowledged_at_once_and_stops_at_the_next_batch(
    qtbot, colour_data, tiny_backbone_file, monkeypatch
):
    import threading
    import time

    from tlstudio.gui import label_issues_view

    pressed = threading.Event()
    real_job = label_issues_view.check_labels_job

    def held_after_first_batch(report, settings, stop, on_event):
        def tell(event):
            on_event(event)
            if event.done and event.step.startswith("computing"):
                assert pressed.wait(30), "Cancel was never pressed"  # the worker waits for the click

        return real_job(report, settings, stop, tell)

    monkeypatch.setattr(label_issues_view, "check_labels_job", held_after_first_batch)
    view, report = _view_and_report(qtbot, colour_data)
    view.run_check(report, TrainSettings(backbone=str(tiny_backbone_file)))
    qtbot.waitUntil(lambda: view.progress.value() > 0, timeout=LONG)  # the first batch is done
    assert view.progress.value() < len(report.images)
    view.cancel.click()
    assert not view.cancel.isEnabled() and "Cancelling" in view.step.text()  # said before it stops
    clicked = time.monotonic()
    pressed.set()
    task = view.task
    qtbot.waitUntil(lambda: view.check.isEnabled(), timeout=LONG)
    assert time.monotonic() - clicked < 10  # at the next batch, not after the whole check
    assert task.wait(5000) and not task.is_running()
    assert view.title.text() == "Label check cancelled." and not view.model.items
    assert not view.progress.isVisible()


def test_new_data_drops_a_check_under_way(qtbot, colour_data, tiny_backbone_file):
    view, report = _view_and_report(qtbot, colour_data)
    view.run_check(report, TrainSettings(backbone=str(tiny_backbone_file)))
    task = view.task
    view.set_data(None, None, [])  # another project: its check must not show this one's result
    assert view.check.isEnabled() and not view.progress.isVisible()
    assert task.wait(LONG)
    qtbot.wait(50)  # (anything it sent would arrive now)
    assert not view.model.items and "cancelled" not in view.title.text()
