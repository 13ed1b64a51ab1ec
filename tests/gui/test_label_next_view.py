"""The Data panel's *Label next* view: suggest with the latest run, add to a class (a copy), undo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from factory import make_unlabelled_colours

from tlstudio.core.project import Project
from tlstudio.core.settings import Augmentation, TrainSettings

LONG = 120_000
pytestmark = pytest.mark.slow


def project_on_a_copy(tmp_path, colour_data, tiny_backbone_file) -> tuple[Project, Path]:
    """A project on a copy of the colour data (the shared run was trained on the same images)."""
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    settings = TrainSettings(
        backbone=str(tiny_backbone_file),
        fine_tune_epochs=0,
        batch_size=8,
        augmentation=Augmentation(False, 0.0),
    )
    return Project(path=tmp_path / "p.tlstudio.json", data_dir=str(data), settings=settings), data


def test_label_next_suggests_copies_into_a_class_and_undoes(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, probe_run
):
    project, data = project_on_a_copy(tmp_path, colour_data, tiny_backbone_file)
    view = window.data.label_next
    window.set_project(project)
    qtbot.waitUntil(lambda: window.data.report is not None, timeout=LONG)
    unlabelled = make_unlabelled_colours(tmp_path / "unlabelled", colour_data)
    view.set_folder(unlabelled)
    view.suggest_button.click()
    assert "Train a run first" in view.title.text()

    project.record_run(probe_run, "completed", {})
    view.count.setValue(3)
    view.waiting_for = lambda: "TensorFlow is still loading"
    view.suggest_button.click()
    assert view.title.text() == "TensorFlow is still loading" and view.task is None
    view.waiting_for = lambda: ""
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)  # as a user sees "TensorFlow ready"
    view.suggest_button.click()
    qtbot.waitUntil(lambda: view.suggest_button.isEnabled() and bool(view.model.items), timeout=LONG)
    assert sorted(i["path"] for i in view.model.items) == [f"mixed/between_{k}.png" for k in range(3)]
    assert "Label these 3 first" in view.title.text() and "2 skipped" in view.title.text()
    assert [view.classes.itemText(k) for k in range(view.classes.count())] == ["blue", "green", "red"]

    first = view.model.items[0]
    view.classes.setCurrentText("blue")
    before = window.data.report
    view.add_button.click()
    copy = data / "blue" / first["path"].split("/")[-1]
    assert copy.read_bytes() == (unlabelled / first["path"]).read_bytes()
    assert (unlabelled / first["path"]).is_file()  # the original stays
    assert first["added_to"] == "blue" and not view.add_button.isEnabled()
    qtbot.waitUntil(lambda: window.data.report is not before and window.data.report is not None, timeout=LONG)
    assert window.data.report.classes["blue"] == 13

    view.undo_button.click()
    assert not copy.exists() and "added_to" not in first
    assert view.add_button.isEnabled()


def test_pseudo_labels_are_copied_only_on_request_and_undone(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, probe_run, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    project, data = project_on_a_copy(tmp_path, colour_data, tiny_backbone_file)
    project.record_run(probe_run, "completed", {})
    window.set_project(project)
    qtbot.waitUntil(lambda: window.data.report is not None and window.backbone.ready, timeout=LONG)
    view = window.data.label_next
    view.set_folder(make_unlabelled_colours(tmp_path / "unlabelled", colour_data))
    assert not view.pseudo_button.isEnabled()  # off until a suggestion found sure images
    view.count.setValue(3)
    view.suggest_button.click()
    qtbot.waitUntil(lambda: view.suggest_button.isEnabled() and bool(view.model.items), timeout=LONG)
    sure = list(view.confident)
    assert sure and all(s.path.startswith("clear_") and s.confidence >= 0.95 for s in sure)
    assert view.pseudo_button.isEnabled() and f"{len(sure)} sure images" in view.pseudo_button.text()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    before = window.data.report
    view.pseudo_button.click()
    copies = sorted(data.glob("*/pseudo-labels/*.png"))
    assert len(copies) == len(sure)
    assert all(c.name.split("_")[1] == c.parent.parent.name for c in copies)  # clear_red_1 → red
    qtbot.waitUntil(lambda: window.data.report is not before and window.data.report is not None, timeout=LONG)
    assert sum(window.data.report.pseudo_labelled.values()) == len(sure)
    assert any("pseudo-labelled" in w for w in window.data.report.warnings)
    view.undo_button.click()
    assert not list(data.glob("*/pseudo-labels/*.png"))


def test_results_that_arrive_before_their_thread_ends_leave_suggest_enabled(window, tmp_path):
    """The worker emits its result a moment before its QThread finishes: the view must not read
    "still running" then (it did, and Suggest stayed disabled for good in 3 of 8 runs)."""
    from tlstudio.core.training.label_next import Suggestion, Suggestions

    class StillRunning:
        def is_running(self) -> bool:
            return True

    view = window.data.label_next
    view.set_folder(tmp_path)
    view.busy, view.task = True, StillRunning()
    view.show_suggestions(Suggestions([Suggestion("a.png", "red", 0.5, "blue", 0.9)], ["blue", "red"], 1))
    assert view.suggest_button.isEnabled() and not view.cancel.isEnabled()
    view.busy = True
    view._failed("boom")
    assert view.suggest_button.isEnabled() and "boom" in view.title.text() and view.choose.isEnabled()


def test_a_failed_suggestion_leaves_suggest_usable_and_the_folder_is_fixed_while_it_runs(
    window, qtbot, tmp_path, probe_run
):
    view = window.data.label_next
    view.latest_run = lambda: probe_run
    empty = tmp_path / "empty"
    empty.mkdir()
    view.set_folder(empty)
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)
    view.suggest_button.click()
    assert not view.choose.isEnabled() and not view.suggest_button.isEnabled()
    qtbot.waitUntil(lambda: view.suggest_button.isEnabled(), timeout=LONG)
    assert "no usable unlabelled image" in view.title.text() and view.choose.isEnabled()
    view.task.wait()
