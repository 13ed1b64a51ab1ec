"""The Export panel: deployment formats verified in their runtimes, shown side by side."""

from __future__ import annotations

import pytest

from tlstudio.core.settings import Augmentation, TrainSettings
from tlstudio.core.training.session import TrainingSession
from tlstudio.gui.export_panel import FORMAT_CHOICES, ExportPanel

pytestmark = pytest.mark.slow


def test_a_format_is_exported_verified_and_tabulated(qtbot, tmp_path, colour_data, tiny_backbone_file):
    s = TrainSettings(
        backbone=str(tiny_backbone_file),
        fine_tune_epochs=0,
        batch_size=8,
        augmentation=Augmentation(False, 0.0),
    )
    result = TrainingSession(s, colour_data, tmp_path / "run").run()
    panel = ExportPanel()
    qtbot.addWidget(panel)
    panel.show_run(result.run_dir, result.status, result.metrics)
    assert panel.format_button.isEnabled()
    choice = next(i for i, c in enumerate(FORMAT_CHOICES) if c[1:] == ("tflite", "float16"))
    panel.export_formats(choice)
    qtbot.waitUntil(lambda: not panel.task.is_running(), timeout=300_000)
    qtbot.waitUntil(lambda: "agreement" in panel.result.toHtml(), timeout=10_000)
    html = panel.result.toHtml()
    assert "tflite-float16" in html and "not written:" not in html
    assert (tmp_path / "run" / "export" / "tflite-float16" / "model.tflite").is_file()


def test_every_format_can_be_cancelled_and_says_so(qtbot, probe_run):
    panel = ExportPanel()
    qtbot.addWidget(panel)
    panel.show_run(probe_run, "completed", {})
    panel.export_formats(0)  # every format, side by side
    assert panel.cancel.isEnabled()
    panel.cancel.click()
    qtbot.waitUntil(lambda: panel.format_button.isEnabled(), timeout=120_000)
    assert not panel.cancel.isEnabled() and "cancelled" in panel.result.toHtml()
    panel.task.wait()


def test_the_app_greys_out_what_is_not_made_here(qtbot):
    from tlstudio.core.deploy.format_list import CHOICES, unavailable
    from tlstudio.core.deploy.formats import DeployResult
    from tlstudio.gui.export_panel import results_html

    panel = ExportPanel()
    qtbot.addWidget(panel)
    assert FORMAT_CHOICES == CHOICES  # the core's list, not the GUI's own
    for i, (_, fmt, _) in enumerate(FORMAT_CHOICES):
        item = panel.format.model().item(i)
        assert item.isEnabled() == (unavailable(fmt) is None)
        if unavailable(fmt):
            assert panel.format.itemData(i, 3) == unavailable(fmt)  # Qt.ToolTipRole

    html = results_html([DeployResult("coreml", "float32", None, None, skipped=unavailable("coreml"))])
    assert "skipped: coreml:" in html and "not written:" not in html
