"""Training ▸ Experiments starts real sweep workers on this machine from the project (two
`tlstudio sweep` processes sharing SQLite), follows their trials, draws Optuna's plots and
importances, shows a worker that refused its arguments with its one line, and stops the workers
when the view closes (no process left behind; their trials failed and queued again)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from processes import processes_with
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox

from tlstudio.core.settings import SEED, Augmentation, TrainSettings
from tlstudio.gui import experiments_view

PATIENCE_MS = 300_000  # two complete trials of two workers on a loaded machine


def complete_rows(view) -> list[dict]:
    return [r for r in (view.board.rows if view.board else []) if r["state"] == "complete"]


def test_the_plots_follow_the_complete_trials(window, qtbot, tmp_path):
    """Optuna's plots and importances appear once 2 trials are complete, and are drawn again as
    more complete (a real study's trials, written as its workers write them)."""
    import optuna

    from tlstudio.core.studies.sweep import write_snapshot

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3))
    objective = lambda t: t.suggest_float("dropout", 0, 0.5) - t.suggest_int("fine_tune_blocks", 1, 4) / 10  # noqa: E731
    study.optimize(objective, n_trials=1)
    write_snapshot(study, tmp_path)
    view = experiments_view.open_experiments(window, str(tmp_path))
    assert view.plots.importance.text() == "Importance and plots need 2 complete trials (1 so far)."
    study.optimize(objective, n_trials=2)
    write_snapshot(study, tmp_path)
    view.refresh()

    def drawn(n):
        assert view.plots.insight is not None and len(view.plots.insight.trials) == n, (
            view.plots.importance.text()
        )

    qtbot.waitUntil(lambda: drawn(3), timeout=120_000)
    assert set(view.plots.insight.importance) == {"dropout", "fine_tune_blocks"}
    assert view.plots.importance.text().startswith("Parameter importance (Optuna, fANOVA): ")
    assert not view.plots.picture.pixmap().isNull()
    study.optimize(objective, n_trials=1)
    write_snapshot(study, tmp_path)
    view.refresh()
    qtbot.waitUntil(lambda: drawn(4), timeout=120_000)

    view.processes.start([[sys.executable, "-c", "import time; time.sleep(120)"]], tmp_path / "logs")
    qtbot.waitUntil(lambda: view.stop_button.isEnabled(), timeout=30_000)
    pid = view.processes.workers[0].pid
    view.stop_button.click()  # SIGTERM, without blocking the window
    qtbot.waitUntil(lambda: _state(view, "stopped"), timeout=30_000)
    assert view.workers.item(0, 4).text() == "killed" and not _alive(pid)
    assert not view.stop_button.isEnabled()
    view.close()


@pytest.mark.slow  # (real workers train real, tiny trials)
def test_the_view_starts_workers_plots_their_trials_and_stops_them_on_close(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, monkeypatch
):
    import optuna

    asked: list[str] = []  # (also answers the window's closing, should the test fail midway)
    monkeypatch.setattr(
        experiments_view.QMessageBox,
        "question",
        lambda *a: asked.append(a[2]) or QMessageBox.StandardButton.Yes,
    )
    space = tmp_path / "space.json"
    space.write_text(
        json.dumps(
            {"dropout": {"low": 0.0, "high": 0.5}, "learning_rate": {"low": 1e-3, "high": 1e-1, "log": True}}
        )
    )
    window.state.project.data_dir = str(colour_data)
    window.state.project.settings = TrainSettings(
        backbone=str(tiny_backbone_file),
        epochs=1,
        fine_tune_epochs=0,
        batch_size=8,
        auto_batch_size=False,
        augmentation=Augmentation(False, 0.0),
        feature_cache=False,  # (the head trains with the optimizer: the rate and dropout matter)
    )
    folder = tmp_path / "sweep"
    folder.mkdir()
    view = experiments_view.open_experiments(window, str(folder))  # an empty folder: a sweep to start
    assert view is not None and "No sweep in" in view.status.text()
    assert view.plots.importance.text() == "Importance and plots need 2 complete trials (0 so far)."

    dialog = view.ask_to_start()
    assert dialog.data.text() == str(colour_data) and dialog.backbones.text() == str(tiny_backbone_file)
    assert dialog.use_project.isChecked()
    dialog.space.setText(str(space))
    dialog.trials.setValue(4)
    dialog.workers.setValue(2)
    dialog.options.setText("--objective loss --heartbeat 1")
    start = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    dialog.data.setText(str(tmp_path / "nothing"))
    start.click()
    assert dialog.isVisible() and "is not a folder" in dialog.problem.text()  # refused, said in one line
    dialog.data.setText(str(colour_data))
    start.click()
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: len([w for w in view.processes.workers if w.pid]) == 2, timeout=30_000)
    pids = {w.pid for w in view.processes.workers}
    assert view.workers.rowCount() == 2 and view.workers.item(0, 3).text() == "running"

    view.start_workers(
        replace(dialog.plan(), workers=1, options=("--folds", "1"))
    )  # a third worker whose arguments are refused: failed, with its one line
    qtbot.waitUntil(lambda: view.processes.workers[2].state == "failed", timeout=60_000)
    assert view.processes.workers[2].reason == "--folds needs at least 2 folds"
    assert view.workers.item(2, 4).text() == "--folds needs at least 2 folds"

    qtbot.waitUntil(lambda: len(complete_rows(view)) >= 2, timeout=PATIENCE_MS)
    qtbot.waitUntil(lambda: _drawn(view), timeout=240_000)
    assert len(view.processes.running()) == 2  # the study wants 4: both still at work
    rows = complete_rows(view)
    assert all(int(r["worker"].rsplit(":", 1)[1]) in pids for r in rows)
    assert view.table.rowCount() == len(view.board.rows)
    best = min(rows, key=lambda r: r["value"])  # --objective loss: the lowest validation loss
    assert view.board.best["number"] == best["number"] and best["value"] == pytest.approx(best["val_loss"])
    assert f"trial {best['number']}, value {best['value']:.4f}" in view.best.text()

    storage = f"sqlite:///{folder / 'sweep.db'}"
    study = optuna.load_study(study_name="sweep", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    drawn = view.plots.insight
    used = [t for t in study.get_trials() if t.number in drawn.trials]
    assert len(used) == len(drawn.trials) >= 2
    again = optuna.create_study(direction="minimize")
    again.add_trials(used)
    expected = optuna.importance.get_param_importances(
        again, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=SEED)
    )
    assert drawn.importance == pytest.approx(dict(expected)) and set(expected) == {"dropout", "learning_rate"}
    assert "Parameter importance (Optuna, fANOVA): " in view.plots.importance.text()
    ticks = [t.get_text() for t in drawn.figures["parallel coordinates"].axes[0].get_xticklabels()]
    assert ticks == ["Objective Value", "dropout", "learning_rate"]
    assert not view.plots.picture.pixmap().isNull()
    view.plots.choice.setCurrentText("importance")
    assert not view.plots.picture.pixmap().isNull()

    assert not asked
    assert view.close()
    assert asked and "Stop the 2 worker(s)" in asked[0]
    assert not view.processes.running()
    assert [w.state for w in view.processes.workers[:2]] == ["stopped", "stopped"]
    assert view.processes.workers[0].reason.startswith("stopped")
    assert not [pid for pid in pids if _alive(pid)]
    assert not processes_with(str(folder)), "a worker or a trial outlived the view"
    trials = optuna.load_study(study_name="sweep", storage=storage).get_trials()
    stopped = [t for t in trials if t.state.name == "FAIL"]
    queued = [t for t in trials if t.state.name == "WAITING"]
    assert stopped and {t.user_attrs["retry_of"] for t in queued} == {t.number for t in stopped}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _drawn(view) -> None:
    assert view.plots.insight is not None, view.plots.importance.text()


def _state(view, state: str) -> None:
    w = view.processes.workers[0]
    assert w.state == state, (w.state, w.reason, w.stderr[-500:])
