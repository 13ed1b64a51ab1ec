"""The CLI's progress printer (rich): a live bar on a terminal, plain lines into a pipe."""

from __future__ import annotations

import io

from tlstudio.core import events as ev
from tlstudio.progress import ProgressPrinter


def run_events(printer: ProgressPrinter) -> None:
    printer(ev.RunStarted("/runs/r1", "CPU", ["a", "b"], 40, 10, 10, 32, "demo"))
    printer(ev.PhaseStarted("probe", "head on cached features", 0, 2, 1e-3, 100, 900, 5, True))
    for done in (0, 16, 40):
        printer(ev.Working("computing the backbone's features of the train split", done, 40))
    printer(ev.Working("fitting the linear probe", 17, 46))
    for epoch in range(2):
        for step in range(1, 6):
            printer(ev.BatchEnded("probe", epoch, step, 5, 0.5, 0.8, 120.0))
        printer(ev.EpochEnded("probe", epoch, {"loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.8}, 1e-3, 1.5))
    for done in (5, 10):
        printer(ev.Finishing("evaluating on the test split", done, 10))
    printer(ev.Finishing("exporting the SavedModel"))
    metrics = {
        "val_accuracy": 0.8,
        "test_accuracy": 0.9,
        "test_accuracy_low": 0.6,
        "test_accuracy_high": 0.98,
    }
    printer(ev.RunFinished("completed", "/runs/r1", {**metrics, "test_images": 10}, "/runs/r1"))


def test_into_a_pipe_only_lines_are_written():
    out = io.StringIO()
    run_events(ProgressPrinter(out, live=False))
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert "epoch 1/2  loss 0.5000" in text and "epoch 2/2" in text
    assert "Evaluating on the test split…" in text and "Exporting the SavedModel…" in text
    assert "test_accuracy" in text and "0.9000" in text
    assert "test accuracy 0.900 (95% interval 0.60–0.98, 10 images): a small test split" in text


def test_on_a_terminal_a_live_bar_shows_the_step_and_loss():
    out = io.StringIO()
    run_events(ProgressPrinter(out, live=True))
    text = out.getvalue()
    assert "\x1b" in text  # drawn in place
    assert "loss 0.5000" in text and "5/5" in text and "epoch 2/2" in text
    assert "features of the train split" in text and "40/40" in text and "17/46" in text


def test_the_checkpoint_soup_is_said_and_so_is_why_there_was_none():
    out = io.StringIO()
    printer = ProgressPrinter(out, live=False)
    printer(ev.Souped([4, 6], 3, 0.2100, 0.2000, 0.900, 0.925))
    printer(ev.Souped([], 0, float("nan"), float("nan"), float("nan"), float("nan"), "no validation split"))
    text = out.getvalue()
    assert "Checkpoint soup: epochs 5, 7 of the 3 best averaged; val_loss 0.2100 → 0.2000" in text
    assert "val_accuracy 0.900 → 0.925" in text
    assert "Checkpoint soup skipped: no validation split" in text
