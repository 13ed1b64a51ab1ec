"""The Train panel's *Find learning rate…*: the core finder in a worker with progress and Cancel, its
curve and suggestion, applied to the Learning rate field only on request."""

from __future__ import annotations

import threading
import time

import pytest

from tlstudio.core.settings import Augmentation, TrainSettings
from tlstudio.gui.train_form import TrainForm

LONG = 120_000
STEPS = 12  # rates tried: enough for a suggestion, quick on a CPU


@pytest.fixture
def form(qtbot, colour_data, tiny_backbone_file):
    """A settings form whose finder is connected as the window connects it."""
    from tlstudio.core.data.health import inspect_folder

    form = TrainForm()
    qtbot.addWidget(form)
    form.show()
    report = inspect_folder(colour_data)
    base = TrainSettings(
        backbone=str(tiny_backbone_file), batch_size=8, augmentation=Augmentation(False, 0.0)
    )
    assert not form.find_lr.isEnabled() and "Not ready" in form.find_lr.toolTip()  # not connected yet
    form.lr_find.settings_source = lambda: form.apply_to(base)
    form.lr_find.report_source = lambda: report
    form.lr_find.waiting_for = lambda: ""
    assert form.find_lr.isEnabled()
    form.lr_find.steps.setValue(STEPS)
    yield form
    if form.lr_find.task is not None:
        form.lr_find.task.wait()
    form.lr_find.close()


def test_the_finder_draws_its_curve_and_applies_the_suggestion_on_request(qtbot, form):
    finder = form.lr_find
    form.find_lr.click()
    assert finder.isVisible() and finder.run_button.isEnabled(), finder.status.text()
    before = form.learning_rate.value()
    finder.run_button.click()
    assert finder.progress.isVisible() and finder.cancel.isEnabled() and not finder.run_button.isEnabled()
    seen: list[tuple[str, int, int]] = []
    finder.task.event.connect(
        lambda _: seen.append((finder.step.text(), finder.progress.value(), finder.progress.maximum()))
    )
    qtbot.waitUntil(lambda: finder.result is not None or not finder.cancel.isEnabled(), timeout=LONG)
    assert finder.result is not None, finder.status.text()
    rates = [(v, m) for text, v, m in seen if text.startswith("Trying learning rates")]
    assert rates and rates[-1][1] == STEPS and any(v >= 1 for v, _ in rates), seen  # the bar moved
    assert any(text.startswith("Computing the backbone's features") for text, _, _ in seen)
    result = finder.result
    assert len(result.rates) >= 5 and len(result.losses) == len(result.rates)
    assert result.rates == sorted(result.rates)  # on a log scale from low to high
    assert not finder.curve.pixmap().isNull()  # the curve is drawn
    assert result.suggestion is not None and f"{result.suggestion:.2e}" in finder.suggestion.text()
    assert finder.use_button.isEnabled() and not finder.progress.isVisible()
    assert form.learning_rate.value() == before  # nothing changes without "Use this learning rate"

    applied: list[float] = []
    finder.rate_chosen.connect(applied.append)
    finder.use_button.click()
    factor = form.apply_to(TrainSettings(backbone="x")).fine_tune_lr_factor
    expected = result.suggestion / factor  # the finder measured phase 2, which runs at factor × this
    assert applied == [pytest.approx(expected)]
    assert form.learning_rate.value() == pytest.approx(min(1.0, max(1e-6, expected)), abs=1e-6)
    assert form.apply_to(TrainSettings(backbone="x")).learning_rate == form.learning_rate.value()
    assert "Learning rate set to" in finder.status.text()


def test_the_finder_cancels_at_the_next_batch_and_keeps_what_it_measured(qtbot, form, monkeypatch):
    from tlstudio.gui import lr_find_view

    pressed = threading.Event()
    real_job = lr_find_view.lr_find_job

    def held_after_first_rate(settings, report, steps, stop, on_event, size, colors):
        def tell(event):
            on_event(event)
            if event.done and event.step.startswith("trying"):
                assert pressed.wait(30), "Cancel was never pressed"

        return real_job(settings, report, steps, stop, tell, size, colors)

    monkeypatch.setattr(lr_find_view, "lr_find_job", held_after_first_rate)
    finder = form.lr_find
    form.find_lr.click()
    before = form.learning_rate.value()
    finder.run_button.click()
    qtbot.waitUntil(lambda: finder.progress.maximum() == STEPS and finder.progress.value() >= 1, timeout=LONG)
    finder.cancel.click()
    assert not finder.cancel.isEnabled() and "Cancelling" in finder.step.text()  # said at once
    clicked = time.monotonic()
    pressed.set()
    task = finder.task
    qtbot.waitUntil(lambda: finder.result is not None, timeout=LONG)
    assert time.monotonic() - clicked < 10
    assert task.wait(5000) and not task.is_running()
    assert len(finder.result.rates) < STEPS  # stopped at the next batch, not at the end
    assert finder.status.text() == "Cancelled." and "Cancelled after" in finder.suggestion.text()
    assert not finder.use_button.isEnabled()  # too few rates for a suggestion
    assert finder.run_button.isEnabled() and form.learning_rate.value() == before


def test_the_finder_says_why_it_cannot_start(qtbot, form):
    finder = form.lr_find
    form.fine_tune.setChecked(False)  # no fine-tune phase to measure
    form.find_lr.click()
    assert not finder.run_button.isEnabled() and "Fine-tuning is off" in finder.status.text()
    form.fine_tune.setChecked(True)
    finder.waiting_for = lambda: "TensorFlow is still loading."
    finder.refresh()
    assert not finder.run_button.isEnabled() and "TensorFlow is still loading" in finder.status.text()
    finder.run()  # refused, not started
    assert finder.task is None


@pytest.mark.slow
def test_the_finder_job_takes_a_multilabel_csv(qtbot, tmp_path, tiny_backbone_file):
    from factory import make_multilabel_csv

    from tlstudio.core.data.source import inspect_data
    from tlstudio.gui.lr_find_view import lr_find_job

    report = inspect_data(make_multilabel_csv(tmp_path / "data", n=32))
    settings = TrainSettings(backbone=str(tiny_backbone_file), batch_size=8)
    said: list[object] = []
    result, image = lr_find_job(
        settings, report, STEPS, threading.Event(), said.append, (320, 200), ("#000", "#c00")
    )
    assert len(result.rates) >= 5 and all(loss >= 0 for loss in result.losses)
    assert not image.isNull() and said
