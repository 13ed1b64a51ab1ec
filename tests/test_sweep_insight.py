"""A sweep's importances and plots are Optuna's own, computed from the folder's trials.json (no
storage); the app's worker command lines; a worker's one-line reason; `sweep --settings`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlstudio.cli import main
from tlstudio.core.settings import SEED, TrainSettings
from tlstudio.core.studies.insight import insight, study_from_snapshot
from tlstudio.core.studies.sweep import write_snapshot
from tlstudio.core.studies.workers import WorkerPlan, failure_reason, plan_problem, worker_commands


def optuna_study(n: int, direction: str = "minimize"):
    """A real Optuna study of ``n`` trials over two parameters (one matters far more)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial):
        dropout = trial.suggest_float("dropout", 0.0, 0.5)
        rate = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        trial.set_user_attr("run_dir", "/nowhere")
        return 3 * dropout + rate

    study.optimize(objective, n_trials=n)
    return study


def test_importances_come_from_optuna_on_the_folders_trials(tmp_path, capsys):
    import optuna

    study = optuna_study(8)
    write_snapshot(study, tmp_path)
    rebuilt = study_from_snapshot(tmp_path)
    assert not isinstance(rebuilt, str) and rebuilt.direction == study.direction
    found = insight(rebuilt, draw=True)
    expected = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=SEED)
    )
    assert found.importance == pytest.approx(dict(expected)) and found.reason is None
    assert max(found.importance, key=found.importance.get) == "dropout"  # it decides the value here
    assert found.trials == list(range(8))
    parallel = found.figures["parallel coordinates"].axes[0]
    assert parallel.get_title() == "Parallel Coordinate Plot"
    assert [t.get_text() for t in parallel.get_xticklabels()] == [
        "Objective Value",
        "dropout",
        "learning_rate",
    ]
    bars = found.figures["importance"].axes[0]
    assert bars.get_title(loc="left") == "Hyperparameter Importances"
    assert {t.get_text() for t in bars.get_yticklabels()} == {"dropout", "learning_rate"}
    assert {a.get_xlabel() for a in found.figures["slice"].axes} >= {"dropout", "learning_rate"}
    import matplotlib

    assert matplotlib.rcParams["axes.facecolor"] == "white"  # Optuna's ggplot style did not leak out

    assert main(["runs", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["importance"] == pytest.approx(found.importance) and len(listed["trials"]) == 8
    assert listed["best"] == study.best_trial.number


def test_too_few_trials_or_an_old_snapshot_say_why(tmp_path, capsys):
    study = optuna_study(1)
    write_snapshot(study, tmp_path)
    found = insight(study_from_snapshot(tmp_path), draw=True)
    assert found.importance is None and not found.figures
    assert found.reason == "Importance and plots need 2 complete trials (1 so far)."
    assert main(["runs", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["importance_note"] == found.reason
    import optuna

    same = optuna.create_study(direction="minimize")
    for t in optuna_study(3).trials:  # the same value whatever the parameters (a probe ignores the rate)
        same.add_trial(optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=1.0))
    assert "the same value" in insight(same, draw=True).reason
    old = json.loads((tmp_path / "trials.json").read_text())
    del old["distributions"]
    (tmp_path / "trials.json").write_text(json.dumps(old))
    assert "no parameter distributions" in study_from_snapshot(tmp_path)


def test_the_apps_worker_commands(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    settings = TrainSettings(backbone="MobileNetV2", epochs=3)
    plan = WorkerPlan(
        data, tmp_path / "sweep", trials=6, workers=2, study="lab", storage="postgresql://me@db:5432/s",
        backbones=("A", "B"), settings=settings, devices="one GPU each", options=("--objective", "loss"),
    )  # fmt: skip
    assert plan_problem(plan) is None
    first, second = worker_commands(plan, python="py")
    assert first[:5] == ["py", "-m", "tlstudio", "sweep", str(data)]
    for flag, value in (
        ("--trials", "6"),
        ("--study", "lab"),
        ("--candidates", "A,B"),
        ("--objective", "loss"),
    ):
        assert first[first.index(flag) + 1] == value
    assert first[first.index("--device") + 1] == "gpu:0" and second[second.index("--device") + 1] == "gpu:1"
    kept = Path(first[first.index("--settings") + 1])
    assert TrainSettings.from_dict(json.loads(kept.read_text())) == settings
    one = worker_commands(WorkerPlan(data, tmp_path / "s2", backbones=("A",), devices="cpu"), python="py")[0]
    assert one[one.index("--backbone") + 1] == "A" and one[one.index("--device") + 1] == "cpu"
    assert "--storage" not in one and "--settings" not in one
    for bad, words in (
        (WorkerPlan(tmp_path / "none", tmp_path / "s"), "is not a folder"),
        (WorkerPlan(data, tmp_path / "s", workers=0), "at least 1 worker"),
        (WorkerPlan(data, tmp_path / "s", storage="no url"), "is not a database URL"),
        (WorkerPlan(data, tmp_path / "s", study=" "), "needs a name"),
    ):
        assert words in plan_problem(bad)


def test_a_workers_reason_is_its_one_line():
    err = "Ranking…\ntlstudio sweep: the study 'lab' was started with another number of trials\n"
    assert failure_reason(2, err) == "the study 'lab' was started with another number of trials"
    assert failure_reason(130, "interrupted").startswith("stopped")
    assert failure_reason(9, "", crashed=True) == "killed"
    assert (
        failure_reason(1, "Traceback\n  ...\nMemoryError:   out\n") == "ended with code 1: MemoryError: out"
    )


def test_sweep_settings_file_is_checked_before_any_work(colour_data, tmp_path, capsys):
    out = tmp_path / "sweep"
    common = ["sweep", str(colour_data), "--out", str(out), "--backbone", "MobileNetV2"]
    assert main([*common, "--settings", str(tmp_path / "none.json")]) == 2
    assert "is not a file" in capsys.readouterr().err and not out.exists()
    file = tmp_path / "settings.json"
    file.write_text(json.dumps(TrainSettings(backbone="x").to_dict()))
    assert main([*common, "--settings", str(file), "--epochs", "3"]) == 2
    assert "leave out --epochs" in capsys.readouterr().err and not out.exists()
    file.write_text(json.dumps({"backbone": "x", "epochs": "many"}))
    assert main([*common, "--settings", str(file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "epochs" in err and not out.exists(), err
