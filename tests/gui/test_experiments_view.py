"""Training ▸ Experiments: the view follows a sweep's folder while its trials come in (a real Optuna
study's trials written as the workers write them), marks the best so far, and opens a trial's run in
Evaluate."""

from __future__ import annotations

import pytest

from tlstudio.core.studies.sweep import write_snapshot
from tlstudio.gui import experiments_view
from tlstudio.gui.main_window import PANELS

pytestmark = pytest.mark.slow  # (the shared probe run trains once)


def test_the_view_follows_a_sweep_and_opens_a_trial_in_evaluate(
    window, qtbot, tmp_path, probe_run, monkeypatch
):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="lab", direction="maximize")
    folder = tmp_path / "sweep"
    folder.mkdir()

    def add(value, run_dir):
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        for key, attr in (("run_dir", str(run_dir)), ("worker", "here:1"), ("val_accuracy", value)):
            trial.set_user_attr(key, attr)
        if value is not None:
            study.tell(trial, value)

    warned: list[str] = []
    monkeypatch.setattr(experiments_view.QMessageBox, "warning", lambda *a: warned.append(a[2]))
    assert experiments_view.open_experiments(window, str(tmp_path)) is None
    assert warned and "not a sweep's folder" in warned[0]

    add(0.5, tmp_path / "gone")
    write_snapshot(study, folder)
    view = experiments_view.open_experiments(window, str(folder))
    assert view is not None and view.table.rowCount() == 1
    assert "Best so far: trial 0, value 0.5000" in view.best.text()
    view.table.selectRow(0)
    assert not view.open_button.isEnabled()  # its run folder is gone

    add(0.9, probe_run)
    add(None, tmp_path / "later")  # still running
    write_snapshot(study, folder)
    qtbot.waitUntil(lambda: view.table.rowCount() == 3, timeout=10_000)  # the view's timer read it
    assert "Best so far: trial 1, value 0.9000" in view.best.text()
    assert "1 running" in view.status.text() and "2 complete" in view.status.text()
    assert view.table.item(1, 0).font().bold() and not view.table.item(0, 0).font().bold()
    view.table.selectRow(1)
    assert view.open_button.isEnabled()
    view.open_button.click()
    assert window.state.selected_run == probe_run.absolute()
    assert any(r.run_dir.absolute() == probe_run.absolute() for r in window.state.runs)
    assert window.nav.currentRow() == PANELS.index("Evaluate")
    view.timer.stop()
    view.close()
