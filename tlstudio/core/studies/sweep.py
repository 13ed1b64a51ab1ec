"""A sweep worker: joins an Optuna study and runs its trials, each an ordinary run in a subprocess.

Every worker (one command per machine, or per GPU) runs the same loop against one storage: SQLite
in the sweep folder on one machine, a PostgreSQL server for several. Optuna's heartbeat marks the
running trial of a worker that died (SIGKILL, power) failed once ``grace`` seconds pass without a
beat, and ``RetryHeartbeatStaleTrialCallback`` queues it again for the next free worker.

The study ends with exactly ``trials`` complete trials. Optuna's ``MaxTrialsCallback`` stops a
worker only after a trial ends, so parallel workers overshoot; here a trial is admitted only while
fewer than ``trials`` others are complete or running ahead of it (by number), checked when it starts
and again ``SETTLE_S`` later (a concurrent start becomes visible by then). A trial not admitted is
marked pruned without running (user attribute ``surplus``); an idle worker waits for a slot that a
failed trial frees, or for the end.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tlstudio.core import atomic
from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import (
    SWEEP_GRACE_FACTOR,
    SWEEP_HEARTBEAT_S,
    SWEEP_STUDY,
    SWEEP_TRIALS,
    TrainSettings,
)
from tlstudio.core.studies.board import SNAPSHOT
from tlstudio.core.studies.space import SearchSpace, apply, show_values

STORAGE_ATTEMPTS = 5  # opening a new storage while another worker makes its tables (_create_or_join)
DB_FILE = "sweep.db"  # the default storage, in the sweep folder
MANIFEST_FILE = files.MANIFEST  # the split every trial uses (named as in a run folder)
LOGS = "logs"  # each trial's output (trial-NNNN.log) and result (trial-NNNN.json)
SETTLE_S = 1.0  # between a trial's two admission checks
POLL_S = 2.0  # an idle worker looks again this often
MAX_RETRY = 3  # a trial whose worker died is run again at most this often
RECORD = "tlstudio_sweep"  # the study's user attribute that every worker must agree with
# on the validation split (optuna's direction)
OBJECTIVES: dict[str, Literal["minimize", "maximize"]] = {"accuracy": "maximize", "loss": "minimize"}


class SweepError(Exception):
    """What stops a sweep, in one line."""


class TrialFailed(Exception):
    """A trial's run failed (its reason is the trial's user attribute ``error``)."""


@dataclass(frozen=True)
class SweepConfig:
    """What a worker needs: the data, its folder, the base settings, the space and the study."""

    data_dir: Path
    out: Path
    base: TrainSettings
    space: SearchSpace
    manifest_fingerprint: str
    trials: int = SWEEP_TRIALS
    study: str = SWEEP_STUDY
    storage: str | None = None  # None: SQLite in ``out``
    objective: str = "accuracy"
    heartbeat: int = SWEEP_HEARTBEAT_S
    threads: int | None = None  # per trial process (None: this machine's cores)
    folds: int = 0  # ≥ 2: each trial is scored by K-fold cross-validation instead of the validation split
    machine: dict = field(default_factory=dict)  # settings that may differ per machine: device

    @property
    def url(self) -> str:
        """The storage URL."""
        return self.storage or sqlite_url(self.out)

    def record(self) -> dict[str, object]:
        """What every worker of the study must share (compared when a worker joins)."""
        shared = {k: v for k, v in self.base.to_dict().items() if k not in ("device", "mixed_precision")}
        return {
            "trials": self.trials,
            "objective": self.objective,
            "space": self.space.to_dict(),
            "manifest_fingerprint": self.manifest_fingerprint,
            "heartbeat": self.heartbeat,
            "folds": self.folds,
            "settings": shared,
        }


def _create_or_join(optuna, config: SweepConfig):
    """The storage and the study. Two workers that start together on a new storage both create
    Optuna's tables; the one that loses that race (``alembic_version``'s unique key, a locked SQLite
    file, a table already there) tries again and finds them made (seen: 3 of 3 starts of two workers on
    one new SQLite file failed before)."""
    import sqlalchemy.exc

    for attempt in range(STORAGE_ATTEMPTS):
        try:
            storage = optuna.storages.RDBStorage(
                config.url,
                engine_kwargs={"connect_args": {"timeout": 60}} if config.url.startswith("sqlite") else {},
                heartbeat_interval=config.heartbeat,
                grace_period=config.heartbeat * SWEEP_GRACE_FACTOR,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY),
            )
            return optuna.create_study(
                study_name=config.study,
                storage=storage,
                direction=OBJECTIVES[config.objective],
                load_if_exists=True,
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as err:
            racing = isinstance(err, sqlalchemy.exc.IntegrityError) or any(
                words in str(err) for words in ("already exists", "database is locked")
            )
            if not racing or attempt == STORAGE_ATTEMPTS - 1:
                raise
            time.sleep(0.5 + random.random())  # the other worker finishes making the tables
    raise AssertionError("unreachable")


def open_study(config: SweepConfig):
    """Create the study, or join it after checking that it is the same sweep.

    Raises:
        SweepError: the storage cannot be reached, or the study was started with another data
            split, space, objective, number of trials, heartbeat or settings.
    """
    import optuna
    import sqlalchemy.exc

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # (a failed trial is said by the worker, once)
    if config.storage is None:
        config.out.mkdir(parents=True, exist_ok=True)  # (the default SQLite file goes there)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            study = _create_or_join(optuna, config)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as err:
            line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SweepError(f"cannot open the study's storage {masked(config.url)}: {line}") from None
    mine = config.record()
    if RECORD not in study.user_attrs:
        study.set_user_attr(RECORD, mine)
        time.sleep(SETTLE_S)  # two first workers at once: the last word counts, for both
    theirs = study.user_attrs[RECORD]
    for key, what in (
        ("manifest_fingerprint", "data split (another data folder, seed or --val/--test)"),
        ("space", "search space"),
        ("objective", "objective"),
        ("trials", "number of trials"),
        ("heartbeat", "heartbeat"),
        ("folds", "number of folds"),
        ("settings", "training settings"),
    ):
        if theirs.get(key) != mine[key]:
            raise SweepError(
                f"the study '{config.study}' was started with another {what}: run the same command on "
                "every machine, or choose another --study"
            )
    return study


def sqlite_url(out: Path) -> str:
    """The default storage: SQLite in the sweep's folder."""
    return f"sqlite:///{(out / DB_FILE).resolve()}"


def recorded_backbones(config_url: str, study: str) -> list[str]:
    """The backbones of an existing study's space (a worker joining it without naming any uses
    them, rather than ranking again); empty when there is no such study yet or it cannot be read
    now (``open_study`` then says why)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        record = optuna.load_study(study_name=study, storage=config_url).user_attrs.get(RECORD) or {}
    except Exception:  # no such study (KeyError), a server out of reach: not this function's to say
        return []
    spec = (record.get("space") or {}).get("backbone")
    return list(spec["choices"]) if isinstance(spec, dict) else [spec] if isinstance(spec, str) else []


def masked(url: str) -> str:
    """A storage URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: said as given
        return url


def counts(study) -> Counter:
    """How many trials are in each state."""
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def run_worker(study, config: SweepConfig, say=print) -> int:
    """Run trials until the study has ``config.trials`` complete ones.

    Args:
        study: from ``open_study``.
        config: the sweep.
        say: told a line per trial.

    Returns:
        The trials this worker completed.

    Raises:
        SweepError: more trials failed than the study runs (every run fails: see the logs).
    """
    import optuna

    (config.out / LOGS).mkdir(parents=True, exist_ok=True)
    scored: list[float] = []  # the values of the trials this worker completed

    def run_one(trial) -> float:
        scored.append(objective(trial, study, config, say))
        return scored[-1]

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial: failed and queued again
        n = counts(study)
        write_snapshot(study, config.out)
        if n["COMPLETE"] >= config.trials:
            return len(scored)
        failed = sum(1 for t in study.get_trials(deepcopy=False) if "error" in t.user_attrs)
        if failed >= max(config.trials, 3):
            raise SweepError(f"{failed} trials failed (see {config.out / LOGS}): stopping")
        if n["COMPLETE"] + n["RUNNING"] >= config.trials and not n["WAITING"]:
            time.sleep(POLL_S)  # every slot is taken: wait for the end, or for a slot freed by a failure
            continue
        study.optimize(run_one, n_trials=1, catch=(TrialFailed,))


def admitted(study, trial, trials: int) -> bool:
    """Whether fewer than ``trials`` others are complete or running ahead of ``trial``."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    mine = (trial.number, trial.datetime_start)
    ahead = [
        t
        for t in study.get_trials(deepcopy=False, states=states)
        if t.number != trial.number and (t.number, t.datetime_start) < mine
    ]
    return len(ahead) < trials


def objective(trial, study, config: SweepConfig, say) -> float:
    """One trial: its run in a subprocess; returns the validation score (raises ``TrialFailed``)."""
    import optuna

    taken = admitted(study, trial, config.trials)
    if taken:  # asked again a moment later: another worker may have taken the same place meanwhile
        time.sleep(SETTLE_S)
        taken = admitted(study, trial, config.trials)
    if not taken:
        trial.set_user_attr("surplus", True)
        raise optuna.TrialPruned("the study has its trials: not run")
    values = config.space.sample(trial)
    settings = apply(config.base, values).but(**config.machine)
    run_dir = (config.out / f"trial-{trial.number:04d}").resolve()
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    retried = frozen.system_attrs.get("failed_trial", frozen.user_attrs.get("retry_of"))  # (stale; stopped)
    if retried is not None:
        trial.set_user_attr("retry_of", retried)
    again = f" (retry of {retried})" if retried is not None else ""
    say(f"trial {trial.number}{again}: {show_values(values)}")
    try:
        record = run_trial(config, trial.number, settings, run_dir)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: this trial fails, and is queued again for anyone
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        raise
    if "val_accuracy" not in record:
        reason = record.get("error") or "the run failed"
        trial.set_user_attr("error", reason)
        say(f"trial {trial.number} failed: {reason}")
        raise TrialFailed(reason)
    for key in ("status", "val_accuracy", "val_loss", "val_images", "val_correct", "image_size"):
        trial.set_user_attr(key, record[key])
    value = record["val_accuracy"] if config.objective == "accuracy" else record["val_loss"]
    say(f"trial {trial.number}: validation {config.objective} {value:.4f}")
    return float(value)


def run_trial(config: SweepConfig, number: int, settings: TrainSettings, run_dir: Path) -> dict:
    """The trial's run in its own process; its result record (``error`` when it crashed)."""
    logs = config.out / LOGS
    log, result = logs / f"trial-{number:04d}.log", logs / f"trial-{number:04d}.json"
    command = [
        *(sys.executable, "-m", "tlstudio.core.studies.trial_run", "train"),
        *(str(config.data_dir.resolve()), str(run_dir), str((config.out / MANIFEST_FILE).resolve())),
        *(json.dumps(settings.to_dict()), str(config.folds), str(result), str(os.getpid())),
    ]
    code = run_process(command, log, config.threads)
    try:
        return json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"error": f"the trial's process ended with code {code}: {last_line(log)} (see {log})"}


def run_process(command: list[str], log: Path, threads: int | None) -> int:
    """Run a trial's process with its output in ``log``; it is ended with this worker (Ctrl-C)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=trial_env(threads))
        try:
            return proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def trial_env(threads: int | None) -> dict[str, str]:
    """The trial's environment: no TF_CONFIG (a trial is one process, never a cluster's worker),
    thread pools capped at ``threads`` (None: what is set already, else this machine's cores)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    cores = str(threads or os.cpu_count() or 1)
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        if threads is not None or name not in env:
            env[name] = cores if name != "TF_NUM_INTEROP_THREADS" else str(min(2, int(cores)))
    return env


def last_line(log: Path) -> str:
    """The last non-empty line of a log (what a crash said last)."""
    try:
        lines = [x for x in log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip()[:300] if lines else "no output"


def trial_rows(study) -> list[dict[str, object]]:
    """One plain row per trial of the study, in number order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        rows.append(
            {
                "number": t.number,
                "state": "surplus" if attrs.get("surplus") else t.state.name.lower(),
                "value": t.value,
                "params": dict(t.params),
                "run_dir": attrs.get("run_dir"),
                "host": attrs.get("host"),
                "worker": attrs.get("worker"),
                "retry_of": attrs.get("retry_of"),
                "val_accuracy": attrs.get("val_accuracy"),
                "val_loss": attrs.get("val_loss"),
                "error": attrs.get("error"),
                "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else None,
            }
        )
    return rows


def write_snapshot(study, out: Path) -> None:
    """``out/trials.json``: the trials now, for ``tlstudio runs`` (which never opens the storage)."""
    from tlstudio.core.studies.insight import distributions_json

    data = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "trials": trial_rows(study),
        "distributions": distributions_json(study),  # (for Optuna's importances without the storage)
    }
    atomic.write_json(out / SNAPSHOT, data)
