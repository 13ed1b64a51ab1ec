"""The Data panel's label check and Label next on a multi-label project (a labels CSV): label sets shown,
the fix chosen with a box per label and written to the CSV, a suggestion labelled with a set, undo."""

from __future__ import annotations

import shutil

import pytest
from factory import make_multilabel_csv

from tlstudio.core.data.labels_csv import read_labels_csv
from tlstudio.core.project import Project
from tlstudio.core.settings import Augmentation, TrainSettings
from tlstudio.gui.label_set import LabelSetDialog

LONG = 120_000


def settings(backbone) -> TrainSettings:
    return TrainSettings(
        backbone=str(backbone), fine_tune_epochs=0, batch_size=8, augmentation=Augmentation(False, 0.0)
    )


def test_the_label_check_lists_label_sets_and_the_fix_writes_the_csv(
    window, qtbot, tmp_path, tiny_backbone_file, monkeypatch
):
    csv = make_multilabel_csv(tmp_path / "data", n=48)
    rows = list(read_labels_csv(csv).rows)
    path, truth = rows[20]
    assert truth, "the planted image needs a label to drop"
    rows[20] = (path, ())  # its labels dropped on purpose
    csv.write_text("path,labels\n" + "".join(f"{p},{';'.join(s)}\n" for p, s in rows))
    project = Project(
        path=tmp_path / "p.tlstudio.json", data_dir=str(csv), settings=settings(tiny_backbone_file)
    )
    window.set_project(project)
    qtbot.waitUntil(lambda: window.backbone.ready and window.data.report is not None, timeout=LONG)
    qtbot.waitUntil(lambda: not window.missing_steps(), timeout=LONG)
    view = window.data.label_issues
    assert window.data.tabs.isTabEnabled(3) and view.csv_path == csv and view.data_dir == csv.parent
    view.check.click()
    qtbot.waitUntil(lambda: view.check.isEnabled() and bool(view.model.items), timeout=LONG)
    assert view.move_button.text() == "Fix the labels…" and "label quality" in view.title.text()
    planted = next(i for i in view.model.items if i["path"] == path)
    assert planted["true"] == "(none)" and planted["given"] == () and set(planted["suggested"]) & set(truth)
    assert view.model.items.index(planted) < 10

    view.list.setCurrentIndex(view.model.index(view.model.items.index(planted)))
    asked = {}

    def tick_the_truth(dialog):
        asked["boxes"] = list(dialog.checks.boxes)
        asked["suggested"] = dialog.checks.checked()
        dialog.checks.set_checked(truth)
        return LabelSetDialog.DialogCode.Accepted

    monkeypatch.setattr(LabelSetDialog, "exec", tick_the_truth)
    before = window.data.report
    view.move_button.click()
    assert asked["boxes"] == ["blue", "green", "red", "yellow"] and asked["suggested"] == planted["suggested"]
    assert dict(read_labels_csv(csv).rows)[path] == truth and planted["moved_to"] == "; ".join(truth)
    assert not view.move_button.isEnabled()  # fixed: not fixed or kept again
    qtbot.waitUntil(lambda: window.data.report is not before and window.data.report is not None, timeout=LONG)
    view.undo_button.click()
    assert dict(read_labels_csv(csv).rows)[path] == () and not planted["moved_to"]
    monkeypatch.setattr(LabelSetDialog, "exec", lambda dialog: LabelSetDialog.DialogCode.Rejected)
    view.move_button.click()  # cancelled: nothing written
    assert dict(read_labels_csv(csv).rows)[path] == ()


@pytest.mark.slow
def test_label_next_on_a_multilabel_run_adds_an_image_with_its_labels_to_the_csv(
    window, qtbot, tmp_path, tiny_backbone_file, multilabel_probe_run
):
    run, trained_on = multilabel_probe_run
    data = tmp_path / "data"
    shutil.copytree(trained_on.parent, data)
    csv = data / trained_on.name
    before = read_labels_csv(csv).rows
    project = Project(
        path=tmp_path / "p.tlstudio.json", data_dir=str(csv), settings=settings(tiny_backbone_file)
    )
    project.record_run(run, "completed", {})
    window.set_project(project)
    qtbot.waitUntil(lambda: window.data.report is not None and window.backbone.ready, timeout=LONG)
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    fresh = make_multilabel_csv(tmp_path / "fresh", n=6, seed=7).parent / "images"
    for image in fresh.glob("*.png"):
        shutil.copy(image, unlabelled / f"new_{image.name}")
    view = window.data.label_next
    view.set_folder(unlabelled)
    view.count.setValue(3)
    view.suggest_button.click()
    qtbot.waitUntil(lambda: view.suggest_button.isEnabled() and bool(view.model.items), timeout=LONG)
    assert len(view.model.items) == 3 and view.multi_label
    assert view.checks.isVisibleTo(view) and not view.classes.isVisibleTo(view)
    assert list(view.checks.boxes) == ["blue", "green", "red", "yellow"]
    assert view.add_button.text() == "Add with these labels" and not view.pseudo_button.isEnabled()
    first = view.model.items[0]
    view.list.setCurrentIndex(view.model.index(0))
    assert view.checks.checked() == first["labels"]  # the run's labels, to correct
    view.checks.set_checked(["red", "yellow"])
    view.add_button.click()
    rows = read_labels_csv(csv).rows
    assert rows[:-1] == before and rows[-1] == (f"added/{first['path']}", ("red", "yellow"))
    assert (data / "added" / first["path"]).read_bytes() == (unlabelled / first["path"]).read_bytes()
    assert first["added_to"] == "red; yellow" and not view.add_button.isEnabled()
    view.undo_button.click()
    assert read_labels_csv(csv).rows == before and not (data / "added" / first["path"]).exists()
    assert (unlabelled / first["path"]).is_file() and view.add_button.isEnabled()


def test_a_single_label_csv_takes_the_suggested_class_in_its_row_and_the_file_stays(qtbot, tmp_path):
    from tlstudio.core.training.label_issues import LabelIssue
    from tlstudio.gui.label_issues_view import LabelIssuesView

    csv = make_multilabel_csv(tmp_path / "data", n=8)
    rows = [(p, (s[0],) if s else ("red",)) for p, s in read_labels_csv(csv).rows]  # one label each
    csv.write_text("path,labels\n" + "".join(f"{p},{s[0]}\n" for p, s in rows))
    path, given = rows[3]
    other = "blue" if given != ("blue",) else "green"
    view = LabelIssuesView()
    qtbot.addWidget(view)
    view.set_data(csv, None, [])
    view.show_issues(([LabelIssue(path, given[0], other, 0.9, 0.1, True)], []))
    view.list.setCurrentIndex(view.model.index(0))
    view.move_current()
    assert dict(read_labels_csv(csv).rows)[path] == (other,) and (csv.parent / path).is_file()
    assert not (csv.parent / other).exists()  # no class folder made beside the CSV
    view.undo()
    assert dict(read_labels_csv(csv).rows)[path] == given


def test_label_next_lists_a_suggestion_in_the_csv_with_a_class_or_a_set(qtbot, tmp_path):
    from tlstudio.core.training.label_next import Suggestion, Suggestions
    from tlstudio.core.training.label_next_multilabel import LabelSuggestion
    from tlstudio.gui.label_next_view import LabelNextView

    csv = make_multilabel_csv(tmp_path / "data", n=8)
    before = read_labels_csv(csv).rows
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    shutil.copy(csv.parent / before[0][0], unlabelled / "a.png")
    view = LabelNextView()
    qtbot.addWidget(view)
    view.set_data(csv)
    view.set_folder(unlabelled)
    view.show_suggestions(Suggestions([Suggestion("a.png", "red", 0.6, "blue", 0.7)], ["blue", "red"], 1))
    assert not view.multi_label and not view.pseudo_button.isEnabled()  # pseudo-labels: class folders only
    view.list.setCurrentIndex(view.model.index(0))
    view.classes.setCurrentText("blue")
    view.add_button.click()  # a single-label CSV: the row takes the class
    assert read_labels_csv(csv).rows[-1] == ("added/a.png", ("blue",))
    view.undo_button.click()
    assert read_labels_csv(csv).rows == before
    probabilities = {"blue": 0.7, "green": 0.1, "red": 0.45, "yellow": 0.0}
    suggestion = LabelSuggestion("a.png", ("blue",), probabilities, "red", 0.4)
    labels = list(probabilities)
    view.show_suggestions(Suggestions([suggestion], labels, 1, task="multi_label"))
    assert view.multi_label and list(view.checks.boxes) == labels
    assert view.model.items[0]["predicted"] == "blue"
    view.list.setCurrentIndex(view.model.index(0))
    assert view.checks.checked() == ("blue",)
    view.checks.set_checked(["blue", "red"])
    view.add_button.click()
    assert read_labels_csv(csv).rows[-1] == ("added/a.png", ("blue", "red"))
    assert not view.checks.isEnabled() and view.model.items[0]["added_to"] == "blue; red"
    view.undo_button.click()
    assert read_labels_csv(csv).rows == before and not (csv.parent / "added" / "a.png").exists()
