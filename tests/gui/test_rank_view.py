"""The Backbone panel's *Rank on my data*: candidates ranked in a worker, a row chosen by double-click."""

from __future__ import annotations

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
    assert steps, "no progress was shown while ranking"
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
