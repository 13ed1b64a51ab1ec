"""The Export panel's "Distil into a small model…" dialog: the core's distillation in the background."""

from __future__ import annotations

import json

import pytest

from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import DISTILL_LEARNING_RATE
from tlstudio.gui.export_panel import ExportPanel
from tlstudio.gui.state import AppState


@pytest.fixture
def student_file(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    path = tmp_path / "small.keras"
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(path)
    return path


def test_the_dialog_refuses_a_bad_student_and_starts_nothing(qtbot, probe_run, tmp_path):
    panel = ExportPanel()
    qtbot.addWidget(panel)
    panel.show_run(probe_run, "completed", {})
    assert panel.distill_button.isEnabled()
    dialog = panel.open_distill()
    qtbot.addWidget(dialog)
    assert dialog.out.text().endswith("-student")
    assert dialog.learning_rate.value() == DISTILL_LEARNING_RATE  # the one default
    dialog.student.setCurrentText("NoSuchNet")
    dialog.out.setText(str(tmp_path / "student"))
    dialog.start_button.click()
    assert dialog.task is None and "unknown backbone" in dialog.report.toPlainText()
    assert not (tmp_path / "student").exists()


@pytest.mark.slow
def test_the_dialog_distils_in_the_background_and_the_student_joins_the_runs(
    qtbot, probe_run, student_file, tmp_path
):
    state = AppState()
    panel = ExportPanel(state=state)
    qtbot.addWidget(panel)
    panel.show_run(probe_run, "completed", {})
    dialog = panel.open_distill()
    qtbot.addWidget(dialog)
    dialog.student.setCurrentText(str(student_file))
    dialog.out.setText(str(tmp_path / "student"))
    dialog.epochs.setValue(6)
    dialog.learning_rate.setValue(0.02)
    seen = []
    dialog.start_button.click()
    assert dialog.task is not None and not dialog.start_button.isEnabled()
    dialog.task.event.connect(lambda e: seen.append(type(e).__name__))
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=300_000)
    dialog.task.wait()
    assert {"PhaseStarted", "EpochEnded", "RunFinished"} <= set(seen)
    assert dialog.result.status == "completed", dialog.result.error
    assert "agreement with the teacher" in dialog.report.toPlainText()
    assert dialog.progress.value() == dialog.progress.maximum()
    info = json.loads((tmp_path / "student" / files.RUN_JSON).read_text())
    assert info["distilled_from"] == str(probe_run.resolve()) and info["distillation"]["epochs"] == 6
    assert state.selected_run == (tmp_path / "student").absolute()  # the student joined the runs
