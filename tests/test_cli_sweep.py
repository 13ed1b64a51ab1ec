"""`tlstudio sweep`: Optuna studies of real runs, shared by worker processes through SQLite and a real
PostgreSQL server; a worker killed mid-trial has its trial failed by the heartbeat and run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from factory import make_colour_dataset
from postgres_server import postgres_bin, postgres_server
from processes import processes_with

from tlstudio.cli import main
from tlstudio.core.data.split import Manifest
from tlstudio.core.settings import TrainSettings
from tlstudio.core.studies.space import SpaceError, parse_space

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 3
PATIENCE_S = 300  # a whole study of tiny trials on a loaded machine


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny data folder (3 classes × 8 images of 16 px), a tiny untrained backbone file, a space."""
    import keras

    root = tmp_path_factory.mktemp("sweep")
    data = make_colour_dataset(root / "data", per_class=8, size=16)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    backbone = root / "tiny.keras"
    keras.Model(inputs, x, name="tiny").save(backbone)
    space = root / "space.json"
    space.write_text(json.dumps({"dropout": {"low": 0.0, "high": 0.5}, "learning_rate": {"choices": [0.01]}}))
    return data, backbone, space


def worker_command(tiny, out: Path, *extra: str) -> list[str]:
    data, backbone, space = tiny
    return [
        *(sys.executable, "-m", "tlstudio", "sweep", str(data), "--out", str(out)),
        *("--backbone", str(backbone), "--space", str(space), "--trials", str(TRIALS)),
        *("--epochs", "1", "--fine-tune-epochs", "0", "--batch-size", "8", "--no-augment"),
        *("--heartbeat", "1", "--threads", "1", "--json", *extra),
    ]


def test_space_files_are_checked_before_any_work(tiny, tmp_path, capsys):
    base = TrainSettings(backbone="x")
    for bad, words in (
        ({"learning_rate": {"low": 0.1, "high": 0.01}}, "low must be less than high"),
        ({"momentum": 0.9}, "unknown parameter 'momentum'"),
        ({"fine_tune_blocks": {"low": 1.5, "high": 3}}, "not a whole number"),
        ({"dropout": {"choices": [0.2, 1.5]}}, "dropout: 1.5 is refused"),
        ({"learning_rate": {"low": 0, "high": 0.1, "log": True}}, "log scale needs low above 0"),
    ):
        with pytest.raises(SpaceError, match=words):
            parse_space(bad, base)
    space = parse_space({"augmentation": {"low": 0.0, "high": 0.3}, "epochs": 2}, base)
    assert space.to_dict() == {"augmentation": {"low": 0.0, "high": 0.3}, "epochs": 2}
    data, backbone, _ = tiny
    bad = tmp_path / "space.json"
    bad.write_text('{"learning_rate": {"low": 1e-4, "high": "big"}}')
    out = tmp_path / "sweep"
    assert (
        main(["sweep", str(data), "--out", str(out), "--backbone", str(backbone), "--space", str(bad)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "learning_rate: 'big' is not a number" in err, err
    assert not out.exists()  # nothing written
    bad.write_text("{not json")
    assert (
        main(["sweep", str(data), "--out", str(out), "--backbone", str(backbone), "--space", str(bad)]) == 2
    )
    assert "is not JSON" in capsys.readouterr().err and not out.exists()


def test_a_worker_that_differs_from_the_study_is_refused_and_trials_get_a_clean_environment(
    tiny, tmp_path, capsys, monkeypatch
):
    from tlstudio.core.studies.space import default_space
    from tlstudio.core.studies.sweep import SweepConfig, open_study, trial_env

    data, backbone, _ = tiny
    out = tmp_path / "sweep"
    common = ["sweep", str(data), "--out", str(out), "--backbone", str(backbone)]
    assert main([*common, "--storage", "no such thing"]) == 2
    assert "is not a database URL" in capsys.readouterr().err and not out.exists()
    base = TrainSettings(backbone=str(backbone))  # a study started elsewhere, on another split
    other = SweepConfig(data, out, base, default_space([str(backbone)], base, None), "another split")
    open_study(other)
    assert main([*common, "--trials", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "was started with another data split" in err, err
    assert not list(out.glob("trial-*"))  # no trial ran

    from tlstudio.core.training import auto  # joining without naming backbones: the study's, no ranking

    monkeypatch.setattr(auto, "available_candidates", lambda: pytest.fail("ranked again"))
    fingerprint = Manifest.load(out / "manifest.csv").fingerprint()  # (made by the refused worker)
    joined = SweepConfig(
        data, out, base, default_space([str(backbone)], base, None), fingerprint, study="two"
    )
    open_study(joined)
    assert main(["sweep", str(data), "--out", str(out), "--study", "two", "--trials", "3"]) == 2
    assert "was started with another number of trials" in capsys.readouterr().err

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    env = trial_env(2)
    assert "TF_CONFIG" not in env and env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "2"
    assert env["TF_NUM_INTEROP_THREADS"] == "2" and trial_env(None)["OMP_NUM_THREADS"] == "8"


def test_sigterm_fails_the_running_trial_queues_it_again_and_ends_its_process(tiny, tmp_path):
    out = tmp_path / "sweep"
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    worker = subprocess.Popen(
        worker_command(tiny, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    deadline = time.monotonic() + 120
    while not (out / "logs" / "trial-0000.log").is_file():
        assert time.monotonic() < deadline and worker.poll() is None, "the first trial never started"
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 130
    assert "interrupted" in worker.stderr.read().decode() and not worker.stdout.read()
    worker.stdout.close()
    worker.stderr.close()
    first, retry = trials_of(f"sqlite:///{out / 'sweep.db'}", "sweep")
    assert first.state.name == "FAIL" and retry.state.name == "WAITING"
    assert retry.user_attrs["retry_of"] == 0 and retry.system_attrs["fixed_params"] == first.params
    time.sleep(1.5)  # the trial's process ended with its worker
    assert not processes_with(str(out / "trial-0000"))


def trials_of(url: str, study: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)


def two_workers_one_killed(commands: list[list[str]], url: str, study: str, logs: Path):
    """Start two workers; once each has completed a trial and one has started another (its process
    launched), SIGKILL that one; return (survivor's summary, the killed trial, the killed worker's pid)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    outs = [open(logs / f"worker-{i}.out", "w") for i in range(2)]  # noqa: SIM115
    procs = [
        subprocess.Popen(c, stdout=o, stderr=subprocess.STDOUT if i else None, env=env)
        for i, (c, o) in enumerate(zip(commands, outs, strict=True))
    ]
    try:
        deadline = time.monotonic() + PATIENCE_S
        victim = None
        while victim is None:
            assert time.monotonic() < deadline, "no worker was mid-trial after both completed one"
            assert all(p.poll() is None for p in procs), "a worker ended before the kill"
            time.sleep(0.5)
            try:
                trials = trials_of(url, study)
            except Exception:  # the study is not created yet
                continue
            finished = Counter(t.user_attrs.get("worker") for t in trials if t.state.name == "COMPLETE")
            running = [t for t in trials if t.state.name == "RUNNING" and _launched(t)]
            if len(finished) == 2 and running:
                victim = running[0]
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        survivor = next(p for p in procs if p.pid != pid)
        assert survivor.wait(PATIENCE_S) == 0, (logs / "worker-1.out").read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for o in outs:
            o.close()
    index = procs.index(survivor)
    text = (logs / f"worker-{index}.out").read_text()
    summary = json.loads(text[text.index("{\n") :])
    return summary, victim, pid


def _launched(trial) -> bool:
    """Whether a trial's process has been started (its log exists)."""
    run = Path(trial.user_attrs.get("run_dir", "/-"))
    return "worker" in trial.user_attrs and (run.parent / "logs" / f"{run.name}.log").is_file()


def check_study(url: str, study: str, summary: dict, victim, killed_pid: int) -> None:
    trials = trials_of(url, study)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == TRIALS and summary["complete"] == TRIALS
    workers = Counter(t.user_attrs["worker"] for t in complete)
    assert len(workers) == 2, workers  # split between the two workers
    killed = next(t for t in trials if t.number == victim.number)
    assert killed.state.name == "FAIL"
    retry = [t for t in complete if t.user_attrs.get("retry_of") == victim.number]
    assert len(retry) == 1 and retry[0].params == victim.params
    assert not retry[0].user_attrs["worker"].endswith(f":{killed_pid}")
    fingerprints = set()
    for t in complete:
        run = Path(t.user_attrs["run_dir"])
        record = json.loads((run / "run.json").read_text())
        assert record["status"] in ("completed", "failed_to_learn")
        assert "test_accuracy" not in record["metrics"]  # no trial saw the test split
        fingerprints.add(record["manifest_fingerprint"])
    assert len(fingerprints) == 1  # one split for every trial, on every worker
    best = summary["best"]
    assert best["trial"] in [t.number for t in complete]
    test = best["test"]
    assert test["test_images"] > 0 and test["test_accuracy_low"] <= test["test_accuracy"]
    assert test["test_accuracy"] <= test["test_accuracy_high"]
    deadline = time.monotonic() + 10  # the killed worker's trial process ended with it
    while processes_with(str(victim.user_attrs["run_dir"])) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_with(str(victim.user_attrs["run_dir"]))


@pytest.mark.slow
def test_two_workers_on_one_machine_share_a_sqlite_study_and_the_best_exports(tiny, tmp_path, capsys):
    out = tmp_path / "sweep"
    commands = [worker_command(tiny, out), worker_command(tiny, out)]  # the default storage: SQLite in out
    summary, victim, pid = two_workers_one_killed(
        commands, f"sqlite:///{out / 'sweep.db'}", "sweep", tmp_path
    )
    check_study(f"sqlite:///{out / 'sweep.db'}", "sweep", summary, victim, pid)
    assert summary["storage"].startswith("sqlite:///") and (out / "sweep.json").is_file()
    best = Path(summary["best"]["run_dir"])
    assert best.parent == out and (best / "saved_model").is_dir()  # exported (and verified) when scored
    capsys.readouterr()
    assert main(["export", str(best), "--format", "saved_model", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["error"] is None and result["verification"]["passed"], result
    assert result["verification"]["agreement"] >= 0.99 and result["verification"]["images"] > 0
    assert main(["runs", str(out)]) == 0
    listing = capsys.readouterr().out
    assert listing.count(" complete ") == TRIALS and " fail " in listing and "* the best trial" in listing


@pytest.mark.slow
@pytest.mark.skipif(
    postgres_bin() is None, reason="no PostgreSQL binaries (Debian: apt-get install postgresql)"
)
def test_two_machines_share_a_postgresql_study(tiny, tmp_path):
    with postgres_server() as url:
        commands = [
            worker_command(tiny, tmp_path / f"machine-{i}", "--storage", url, "--study", "shared")
            for i in range(2)
        ]
        summary, victim, pid = two_workers_one_killed(commands, url, "shared", tmp_path)
        check_study(url, "shared", summary, victim, pid)
        assert summary["storage"] == url  # (no password in it to hide)
        dirs = {
            Path(t.user_attrs["run_dir"]).parent.name
            for t in trials_of(url, "shared")
            if "run_dir" in t.user_attrs
        }
        assert dirs == {"machine-0", "machine-1"}  # each machine's runs in its own folder


@pytest.mark.slow
def test_rank_ties_as_candidates_and_cross_validated_trials(tiny, tmp_path, capsys, monkeypatch):
    """Without --backbone/--candidates the space's backbones are those at hand that rank ties (two
    copies of one model here: tied for sure); with --folds each trial is K runs that never see the
    sweep's test split, and the best is trained once more, exported and scored on it."""
    import shutil

    from tlstudio.core.training import auto

    data, backbone, _ = tiny
    twin = shutil.copy(backbone, tmp_path / "twin.keras")
    monkeypatch.setattr(auto, "available_candidates", lambda: [str(backbone), str(twin)])
    out = tmp_path / "cv"
    args = f"sweep {data} --out {out} --trials 1 --folds 2 --epochs 1 --fine-tune-epochs 0".split()
    args += ["--batch-size", "8", "--no-augment", "--threads", "1", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["objective"] == "cross-validated accuracy" and summary["complete"] == 1
    assert summary["best"]["params"]["backbone"] in (str(backbone), str(twin))  # chosen by the trial
    trial = Path(summary["best"]["run_dir"])
    test_images = {row[0] for row in _manifest_rows(out / "manifest.csv") if row[3] == "test"}
    for fold in ("fold-1", "fold-2"):
        rows = _manifest_rows(trial / fold / "manifest.csv")
        assert rows and not test_images & {row[0] for row in rows}  # the sweep's test split left out
    final = Path(summary["best"]["export_run_dir"])
    assert final == trial / "final" and (final / "saved_model").is_dir()
    record = json.loads((final / "run.json").read_text())
    assert record["metrics"]["test_accuracy"] == summary["best"]["test"]["test_accuracy"]
    assert record["metrics"]["test_images"] == len(test_images)


def _manifest_rows(path: Path) -> list[list[str]]:
    import csv

    return list(csv.reader(path.read_text().splitlines()))[1:]
