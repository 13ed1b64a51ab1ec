"""The Export panel's Model card tab shows the selected run's card, rendered, its class names literal."""

from __future__ import annotations

import json
import shutil

import pytest

from tlstudio.core.deploy.model_card import RUN_CARD
from tlstudio.core.project import Project
from tlstudio.core.results import run_folder as files
from tlstudio.gui.export_panel import ExportPanel
from tlstudio.gui.state import AppState

pytestmark = pytest.mark.slow


def test_the_export_panel_shows_the_selected_runs_card(qtbot, tmp_path, probe_run):
    other = shutil.copytree(probe_run, tmp_path / "other-run")
    (other / RUN_CARD).unlink()  # a run from before cards: its card is made from its folder
    shutil.rmtree(other / files.EXPORT, ignore_errors=True)  # (an earlier test may have exported the run)
    evaluation = json.loads((other / files.EVALUATION).read_text())
    first = evaluation["labels"][0]
    evaluation["per_class"] = {f"{k}|x *y*": v for k, v in evaluation["per_class"].items()}
    (other / files.EVALUATION).write_text(json.dumps(evaluation))
    project = Project(path=tmp_path / "p.tlstudio.json", data_dir=str(tmp_path))
    project.record_run(probe_run, "completed", {})
    project.record_run(other, "completed", {})
    state = AppState(project)
    state.select_run(probe_run)
    panel = ExportPanel(state=state)
    qtbot.addWidget(panel)
    assert panel.views.tabText(panel.views.indexOf(panel.card)) == "Model card"
    shown = panel.card.toPlainText()
    metrics = json.loads((probe_run / files.METRICS).read_text())
    assert f"Model card: {probe_run.name}" in shown and "Known limits" in shown
    assert f"Accuracy: {metrics['test_accuracy']:.3f}" in shown and "|" not in shown.split("\n")[0]

    state.select_run(other)
    shown = panel.card.toPlainText()
    assert "Model card: other-run" in shown
    assert f"{first}|x *y*" in shown  # escaped in the Markdown, literal once rendered
    state.select_run(None)
    assert panel.card.toPlainText() == ""
