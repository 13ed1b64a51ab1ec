"""The Backbone panel's *Rank on my data*: candidates ranked in a worker, a row chosen by double-click."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlstudio.core.project import Project

LONG = 120_000
pytestmark = pytest.mark.slow


def test_rank_on_my_data_ranks_the_candidates_and_a_double_click_chooses_one(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file
):
    import keras

    untrained = tmp_path / "untrained.keras"
    keras.models.clone_model(keras.models.load_model(tiny_backbone_file)).save(untrained)
    rank = window.backbone.rank
    rank.run_rank()
    assert "at least two candidates" in rank.status.text()
    window.set_project(Project(path=tmp_path / "p.tlstudio.json", data_dir=str(colour_data)))
    qtbot.waitUntil(lambda: window.data.report is not None and window.backbone.ready, timeout=LONG)
    window.backbone.choose(str(tiny_backbone_file))
    rank.add_chosen.click()
    rank.add_chosen.click()  # once only
    rank.add(str(untrained))
    assert rank.names() == [str(tiny_backbone_file), str(untrained)]
    rank.rank_button.click()
    assert not rank.rank_button.isEnabled() and rank.cancel.isEnabled()
    steps: list[str] = []
    rank.task.event.connect(steps.append)  # each step is said as it starts
    qtbot.waitUntil(lambda: rank.rank_button.isEnabled(), timeout=LONG)
    assert any(isinstance(s, str) for s in steps), "no step was said while ranking"
    counts = [s for s in steps if isinstance(s, tuple)]  # the bar: images done of the candidate's
    assert counts and counts[-1][0] == counts[-1][1] > 0 and not rank.progress.isVisible()
    assert rank.table.rowCount() == 2, rank.status.text()
    names = {rank.table.item(r, 1).toolTip() for r in range(2)}
    assert names == {str(tiny_backbone_file), str(untrained)}
    assert rank.table.item(0, 0).text() == "=" and "Ranked on" in rank.status.text()
    rank.rank_button.click()
    rank.cancel.click()  # acknowledged at once; the worker stops at its next batch
    assert "Cancelling" in rank.status.text() and not rank.cancel.isEnabled()
    qtbot.waitUntil(lambda: rank.rank_button.isEnabled(), timeout=LONG)
    second = rank.table.item(1, 1).toolTip()
    rank.table.cellDoubleClicked.emit(1, 1)
    assert window.backbone.spec.source == second


def unloadable_model(good: Path, to: Path) -> Path:
    """A .keras file that passes the checks made before the work but that Keras cannot build (a
    layer it does not know): it fails mid-ranking."""
    import zipfile

    with zipfile.ZipFile(good) as source, zipfile.ZipFile(to, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                data = data.replace(b'"class_name": "Conv2D"', b'"class_name": "NoSuchLayer"', 1)
            out.writestr(item, data)
    return to


def test_bad_candidates_start_nothing_and_a_candidate_failing_mid_run_keeps_the_others_rows(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, monkeypatch
):
    import keras
    from PySide6.QtCore import Qt

    from tlstudio.core.training import ranking

    rank = window.backbone.rank
    window.set_project(Project(path=tmp_path / "p.tlstudio.json", data_dir=str(colour_data)))
    qtbot.waitUntil(lambda: window.data.report is not None and window.backbone.ready, timeout=LONG)
    bad = unloadable_model(tiny_backbone_file, tmp_path / "unknown_layer.keras")
    untrained = tmp_path / "untrained.keras"
    keras.models.clone_model(keras.models.load_model(tiny_backbone_file)).save(untrained)

    # 1. checked first: a wrong name and a missing file start no work; each is a red row with its reason
    built: list[str] = []
    real_features = ranking.image_features
    monkeypatch.setattr(ranking, "image_features", lambda report, name, **kw: built.append(name))
    good, missing = str(tiny_backbone_file), str(tmp_path / "missing.keras")
    rank.candidates.setText(f"{good}, NoSuchNet, {missing}, {untrained}")
    rank.rank_button.click()
    qtbot.waitUntil(lambda: rank.rank_button.isEnabled(), timeout=LONG)
    assert built == [], "a candidate was built before every candidate was checked"
    assert "Nothing was ranked" in rank.status.text()
    assert rank.table.rowCount() == 2
    assert [rank.table.item(r, 1).toolTip() for r in range(2)] == ["NoSuchNet", missing]
    assert "unknown backbone" in rank.failed_row(0) and "no such file" in rank.failed_row(1)
    assert rank.table.item(0, 0).text() == "✗" and "unknown backbone" in rank.table.item(0, 2).text()
    assert rank.table.item(0, 2).foreground().color().name() == "#bb0000"
    assert rank.drop_bad.isVisibleTo(rank)
    rank.drop_bad.click()
    assert rank.names() == [good, str(untrained)] and not rank.drop_bad.isVisibleTo(rank)
    assert rank.table.rowCount() == 0

    # 2. one fails during its work: the others are ranked, it is a red row with its reason
    monkeypatch.setattr(ranking, "image_features", real_features)
    rank.add(str(bad))
    rank.rank_button.click()
    steps: list[str] = []
    rank.task.event.connect(steps.append)
    qtbot.waitUntil(lambda: rank.rank_button.isEnabled(), timeout=LONG)
    assert any("failed" in s for s in steps), steps
    assert rank.table.rowCount() == 3, rank.status.text()
    ranked = {rank.table.item(r, 1).toolTip() for r in range(2)}
    assert ranked == {good, str(untrained)} and all(rank.failed_row(r) is None for r in range(2))
    assert rank.table.item(2, 1).toolTip() == str(bad)
    assert "could not load" in rank.failed_row(2) and "NoSuchLayer" in rank.table.item(2, 2).toolTip()
    assert rank.table.columnSpan(2, 2) == rank.table.columnCount() - 2
    assert "1 of 3 candidate(s) failed" in rank.status.text() and "Ranked on" in rank.status.text()
    chosen = window.backbone.spec.source if window.backbone.spec else None
    rank.table.cellDoubleClicked.emit(2, 1)  # a failed row cannot be chosen
    assert (window.backbone.spec.source if window.backbone.spec else None) == chosen
    rank.table.cellDoubleClicked.emit(0, 1)
    assert window.backbone.spec.source == rank.table.item(0, 1).toolTip()
    assert rank.table.item(0, 1).data(Qt.ItemDataRole.UserRole) is None


def test_rank_on_my_data_ranks_a_multilabel_csv_by_macro_map(qtbot, tmp_path, tiny_backbone_file):
    import keras
    from factory import make_multilabel_csv

    from tlstudio.core.data.source import inspect_data
    from tlstudio.gui.rank_view import RankView

    report = inspect_data(make_multilabel_csv(tmp_path / "data", n=32))
    assert report.task == "multi_label"
    untrained = tmp_path / "untrained.keras"
    keras.models.clone_model(keras.models.load_model(tiny_backbone_file)).save(untrained)
    rank = RankView()
    qtbot.addWidget(rank)
    rank.report_source = lambda: report
    rank.candidates.setText(f"{tiny_backbone_file}, {untrained}")
    rank.run_rank()
    qtbot.waitUntil(lambda: rank.rank_button.isEnabled(), timeout=LONG)
    assert rank.table.rowCount() == 2 and rank.failed_row(0) is None, rank.status.text()
    assert rank.table.horizontalHeaderItem(2).text() == "Probe macro mAP"
    assert rank.table.horizontalHeaderItem(4).text() == "k-NN mAP"
    assert "by macro mAP (multi-label)" in rank.status.text()
    scores = [float(rank.table.item(r, 2).text()) for r in range(2)]
    assert scores == sorted(scores, reverse=True) and rank.table.item(0, 0).text() == "="
