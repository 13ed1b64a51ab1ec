"""The Train panel says what the checkpoint soup did, or why there was none."""

from __future__ import annotations

from tlstudio.core import events as ev
from tlstudio.gui.train_panel import TrainPanel


def test_the_train_panel_says_what_the_soup_did(qtbot):
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.on_event(ev.Souped([4, 6], 3, 0.2100, 0.2000, 0.900, 0.925))
    assert panel.message.text() == (
        "Checkpoint soup: 2 of the 3 best epochs averaged (validation loss 0.2100 → 0.2000)."
    )
    nan = float("nan")
    panel.on_event(ev.Souped([], 0, nan, nan, nan, nan, "no validation split"))
    assert panel.message.text() == "Checkpoint soup skipped: no validation split"
    panel.curves.renderer.stop()
