"""The window follows one app state: a new project shows nothing of the last one; runs are recorded
when they start; Export acts on the selected run (by default the best by validation)."""

from __future__ import annotations

import json

import pytest
from factory import make_colour_dataset
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from tlstudio.core.project import Project
from tlstudio.core.results import run_folder as files

pytestmark = pytest.mark.slow
LONG = 120_000


def train_briefly(window, qtbot, baseline: bool = False):
    window.train.form.epochs.setValue(2)
    window.train.form.fine_tune.setChecked(False)
    window.train.form.batch_size.setValue(8)
    window.train.form.learning_rate.setValue(0.01)
    window.start_training(baseline=baseline)
    qtbot.waitUntil(lambda: not window.train.is_running(), timeout=LONG)


def nothing_of_a_project_is_shown(window) -> None:
    """Every panel is empty, as in a fresh window."""
    assert window.state.report is None and window.state.backbone is None and window.state.plan is None
    data = window.data
    assert data.report is None and data.folder is None
    assert data.classes.rowCount() == 0 and data.thumbs.count() == 0 and data.warnings.count() == 0
    assert data.skipped.rowCount() == 0 and data.quality.rowCount() == 0 and not data.chart.counts
    assert data.label_issues.model.rowCount() == 0 and data.label_issues.data_dir is None
    assert data.label_next.data_dir is None
    assert window.backbone.spec is None and not window.backbone.table.selectionModel().hasSelection()
    assert window.backbone.rank.table.rowCount() == 0
    assert window.layers.model.tree is None and window.layers.totals.text() == ""
    train = window.train
    assert not train.curves.epochs and not train.curves.batches and train.message.text() == ""
    assert not train.start.isEnabled() and "choose a usable data folder" in train.readiness.text()
    assert window.evaluate.runs.rowCount() == 0 and window.evaluate.confusion.rowCount() == 0
    assert "Test accuracy" not in window.evaluate.summary.toPlainText()
    assert window.export.run_dir is None and not window.export.button.isEnabled()
    assert window.export.run_choice.count() == 0
    ticks = [window.nav.item(i).text() for i in range(window.nav.count())]
    assert not [t for t in ticks if "✓" in t], ticks


def test_a_new_project_starts_empty_and_then_shows_only_its_own_data(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, monkeypatch
):
    window.set_project(Project(path=tmp_path / "first.tlstudio.json", data_dir=str(colour_data)))
    qtbot.waitUntil(lambda: window.data.report is not None, timeout=LONG)
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)
    window.backbone.choose(str(tiny_backbone_file))
    qtbot.waitUntil(lambda: window.layers.model.tree is not None, timeout=LONG)
    window.layers.top_blocks.setValue(1)
    window.layers.top_button.click()
    train_briefly(window, qtbot)
    assert window.evaluate.runs.rowCount() == 1 and "Test accuracy" in window.evaluate.summary.toPlainText()
    assert window.export.button.isEnabled()

    second = tmp_path / "shapes.tlstudio.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(second), ""))
    window.new_project()
    nothing_of_a_project_is_shown(window)
    saved = Project.load(second)
    assert saved.data_dir is None and saved.runs == [] and saved.settings.backbone == ""
    assert saved.settings.freeze.preset == "all"  # the default plan, not the first project's "top"
    told = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a: told.append(a[2]))
    window.start_training()  # Start (by its shortcut) with nothing chosen: refused, nothing trained
    assert not window.train.is_running() and not (tmp_path / "shapes-runs").exists()
    assert told and "choose a usable data folder" in told[0]

    other = make_colour_dataset(tmp_path / "other", per_class=5)
    (other / "red").rename(other / "crimson")
    window.data.load(str(other))
    qtbot.waitUntil(lambda: window.data.report is not None, timeout=LONG)
    assert set(window.data.report.classes) == {"crimson", "green", "blue"}
    shown = [window.data.classes.item(r, 0).text() for r in range(window.data.classes.rowCount())]
    assert sorted(shown) == ["blue", "crimson", "green"]
    assert window.data.thumbs.count() > 0  # the first class's thumbnails
    qtbot.waitUntil(lambda: Project.load(second).data_dir == str(other), timeout=5000)  # (autosaved)
    assert window.evaluate.runs.rowCount() == 0 and window.backbone.spec is None


def test_clicking_a_class_shows_its_thumbnails(window, qtbot, tmp_path, colour_data):
    window.set_project(Project(path=tmp_path / "p.tlstudio.json", data_dir=str(colour_data)))
    qtbot.waitUntil(lambda: window.data.report is not None, timeout=LONG)
    table = window.data.classes
    row = 2
    rect = table.visualRect(table.model().index(row, 1))  # a click on the count column, not the name
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    label = table.item(row, 0).text()
    assert window.data.thumbs.count() > 0
    assert all(
        window.data.thumbs.item(i).toolTip().startswith(label + "/")
        for i in range(window.data.thumbs.count())
    )


def test_export_acts_on_the_selected_run_and_defaults_to_the_best(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file
):
    window.set_project(Project(path=tmp_path / "p.tlstudio.json", data_dir=str(colour_data)))
    qtbot.waitUntil(lambda: window.data.report is not None, timeout=LONG)
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)
    window.backbone.choose(str(tiny_backbone_file))
    qtbot.waitUntil(lambda: window.layers.model.tree is not None, timeout=LONG)
    train_briefly(window, qtbot)
    transfer = window.train.run_dir
    assert window.export.run_dir == transfer
    train_briefly(window, qtbot, baseline=True)
    baseline = window.train.run_dir
    assert baseline != transfer
    runs = {r.run_dir: r for r in window.state.runs}
    # after the baseline, as in a project opened again, the best by validation is selected
    best = max(runs.values(), key=lambda r: (r.metrics["val_accuracy"], -r.metrics["val_loss"]))
    assert window.export.run_dir == best.run_dir and window.state.selected_run == best.run_dir
    window.open_project(str(tmp_path / "p.tlstudio.json"))
    assert window.state.selected_run == best.run_dir
    assert window.export.run_dir == best.run_dir and best.name in window.export.summary.text()
    # the user picks the other run in Export's list: Export, Evaluate and Label next follow
    other = baseline if best.run_dir == transfer else transfer
    index = window.export.run_choice.findData(str(other))
    window.export.run_choice.activated.emit(index)
    assert window.export.run_dir == other and window.state.selected_run == other
    assert window.evaluate.run_dir == other
    assert window.run_for_suggestions() == other
    window.export.export_to(str(tmp_path / "exported"))
    qtbot.waitUntil(lambda: not window.export.task.is_running(), timeout=LONG)
    qtbot.waitUntil(lambda: "verified" in window.export.result.toPlainText(), timeout=5000)

    def described(folder):
        meta = json.loads((folder / files.METADATA).read_text())
        return {k: v for k, v in meta.items() if k not in ("export_id", "verification_max_abs_difference")}

    assert described(tmp_path / "exported") == described(other) != described(best.run_dir)


def test_the_help_menu_lists_the_shortcuts_and_says_what_runs(window, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text: shown.append((title, text)))
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append((title, text)))
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    for action in menu.actions():
        action.trigger()
    (keys_title, keys), (about_title, about) = shown
    assert keys_title == "Keyboard shortcuts" and "Training ▸ Start" in keys and "Ctrl+Return" in keys
    assert "File ▸ New project…" in keys
    assert about_title == "About TL Studio" and "TL Studio 0.1.0" in about and "settings.ini" in about


def test_quick_model_from_the_start_page_follows_the_run_and_keeps_its_choice(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, monkeypatch
):
    import tlstudio.core.deploy.export_set as export_set
    import tlstudio.core.training.auto as auto

    monkeypatch.setattr(auto, "available_candidates", lambda: [str(tiny_backbone_file)])
    monkeypatch.setattr(export_set, "export_all", lambda run, **kw: [])  # (the CLI test exports for real)
    assert window.start_page.quick.isVisibleTo(window)
    window.quick_model(str(colour_data), str(tmp_path / "quick"))
    assert window.train.is_running() and "(quick model…)" in window.windowTitle()
    qtbot.waitUntil(lambda: not window.train.is_running(), timeout=LONG)
    project = Project.load(tmp_path / "quick.tlstudio.json")
    assert project.data_dir == str(colour_data) and [r["status"] for r in project.runs] == ["completed"]
    assert project.settings.backbone == str(tiny_backbone_file)  # the project keeps what it chose
    assert (
        f"Quick model chose {tiny_backbone_file.name}" in window.train.message.text()
        and "Validation: after" in window.train.message.text()
    )
    assert window.export.run_dir == window.train.run_dir and window.state.task is None


def test_a_quick_model_refused_by_the_doctor_leaves_no_run_behind(window, qtbot, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    window.quick_model(str(empty), str(tmp_path / "q"))
    qtbot.waitUntil(lambda: not window.train.is_running(), timeout=LONG)
    assert "not usable" in window.train.message.text()
    assert Project.load(tmp_path / "q.tlstudio.json").runs == [] and window.state.task is None


def test_a_sample_still_building_never_replaces_the_project_chosen_meanwhile(
    window, qtbot, tmp_path, monkeypatch
):
    import threading

    import tlstudio.gui.project_files as project_files
    from tlstudio.gui import worker

    release = threading.Event()

    def slow_build(folder):  # the sample's CNN, built after the person moved on
        release.wait(30)

    monkeypatch.setattr(project_files, "build_sample_backbone", slow_build)
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "mine.tlstudio.json"), "")
    )
    sample_home = tmp_path / "home"
    monkeypatch.setattr(
        project_files.QStandardPaths, "writableLocation", staticmethod(lambda _: str(sample_home))
    )
    window.open_sample()
    building = window.sample_task
    assert building is not None and building.is_running()
    window.new_project()
    release.set()
    qtbot.waitUntil(lambda: not building.is_running(), timeout=LONG)
    qtbot.wait(200)  # (anything queued by the finished task is delivered now)
    assert window.project.name == "mine" and window.project.data_dir is None
    assert building not in worker.running_tasks()
