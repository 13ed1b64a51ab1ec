"""The end of a sweep: the best trial, the trials its validation split cannot tell from it, and the
best run exported and scored once on the test split (which no trial saw).

Ties are judged as ``tlstudio rank`` judges them: a paired bootstrap over the validation images
(each trial records which it got right) whose 2.5th percentile of the best's lead is at most 0.
Every trial's validation accuracy carries its 95% Wilson interval; the test score carries its own.
The summary is written to ``OUT/sweep.json`` and kept in the study (user attribute ``tlstudio_test``
holds the test score, so it is computed once for the study, not once per worker).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from tlstudio.core import atomic
from tlstudio.core.results.metrics import tied_by_bootstrap, wilson_interval
from tlstudio.core.results.run_folder import RunFolderError, claim
from tlstudio.core.settings import SEED
from tlstudio.core.studies.board import SWEEP_JSON
from tlstudio.core.studies.sweep import (
    LOGS,
    MANIFEST_FILE,
    SweepConfig,
    SweepError,
    last_line,
    masked,
    run_process,
    trial_rows,
)

BOOTSTRAP = 200  # paired resamples, as rank draws
TEST_ATTR = "tlstudio_test"


def correct_vector(text: str) -> np.ndarray:
    """A trial's ``val_correct`` ("1" right, "0" wrong, "-" unreadable) as 1.0 / 0.0 / NaN."""
    return np.array([np.nan if c == "-" else float(c) for c in text])


def val_interval(text: str) -> tuple[float, float]:
    """The 95% Wilson interval of a trial's validation accuracy."""
    v = correct_vector(text)
    v = v[~np.isnan(v)]
    return wilson_interval(int(v.sum()), len(v))


def tied_with(best: str, others: dict[int, str], seed: int = SEED) -> list[int]:
    """The trials (by number) that a paired bootstrap on the validation images cannot tell from the
    best (the best included)."""
    b = correct_vector(best)
    rng = np.random.default_rng(seed)
    tied = []
    for number, text in sorted(others.items()):
        o = correct_vector(text)
        if len(o) != len(b):
            continue  # (not the same split: the study refuses such workers)
        keep = ~(np.isnan(b) | np.isnan(o))
        n = int(keep.sum())
        draws = rng.integers(0, n, (BOOTSTRAP, n))
        if n and tied_by_bootstrap(b[keep], o[keep], draws):
            tied.append(number)
    return tied


def summarize(study, config: SweepConfig, say=print) -> dict[str, object]:
    """The sweep's outcome (also ``OUT/sweep.json``); the best run is scored on the test split by the
    worker that holds its folder.

    Raises:
        SweepError: no trial completed.
    """
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise SweepError("no trial completed: see the logs in " + str(config.out / LOGS))
    best = study.best_trial
    correct = {t.number: t.user_attrs["val_correct"] for t in complete}
    ties = tied_with(best.user_attrs["val_correct"], correct)
    rows = trial_rows(study)
    for row in rows:
        t = next((c for c in complete if c.number == row["number"]), None)
        if t is not None:
            row["val_accuracy_interval"] = list(val_interval(t.user_attrs["val_correct"]))
            row["tied_with_best"] = t.number in ties
    states = [r["state"] for r in rows]
    test = test_score(study, best, config, say)
    summary = {
        "study": study.study_name,
        "storage": masked(config.url),
        "objective": f"{'cross-validated' if config.folds else 'validation'} {config.objective}",
        "trials": config.trials,
        "complete": states.count("complete"),
        "failed": states.count("fail"),
        "retried": sum(1 for r in rows if r["retry_of"] is not None),
        "best": {
            "trial": best.number,
            "value": best.value,
            "params": dict(best.params),
            "run_dir": best.user_attrs["run_dir"],  # (cross-validated: its folds)
            "val_accuracy": best.user_attrs["val_accuracy"],
            "val_accuracy_interval": list(val_interval(best.user_attrs["val_correct"])),
            "test": test,
            "export_run_dir": (test or {}).get("run_dir", best.user_attrs["run_dir"]),  # the model's run
        },
        "tied_with_best": [n for n in ties if n != best.number],
        "trials_table": rows,
    }
    atomic.write_json(config.out / SWEEP_JSON, summary)
    return summary


def test_score(study, best, config: SweepConfig, say) -> dict[str, object] | None:
    """The best run's test score with its interval: the study's, or scored here once (exported and
    verified first) when this machine holds the run; None when another machine holds it."""
    kept = study.user_attrs.get(TEST_ATTR)
    if kept and kept.get("trial") == best.number:
        return kept
    run_dir = Path(best.user_attrs["run_dir"])
    if not run_dir.is_dir():
        say(f"the best run {run_dir} is on {best.user_attrs.get('host')}: its worker scores it")
        return None
    result = run_dir.parent / LOGS / f"{run_dir.name}.test.json"
    lock = _claim_when_free(run_dir)
    try:
        if not result.is_file():
            say(f"trial {best.number} is the best: exporting it and scoring it once on the test split")
            log = run_dir.parent / LOGS / f"{run_dir.name}.test.log"
            command = [
                *(sys.executable, "-m", "tlstudio.core.studies.trial_run", "score"),
                *(str(config.data_dir.resolve()), str(run_dir), str((config.out / MANIFEST_FILE).resolve())),
                *(str(result), str(os.getpid())),
            ]
            code = run_process(command, log, config.threads)
            if code != 0 or not result.is_file():
                return {"trial": best.number, "error": f"scoring failed: {last_line(log)} (see {log})"}
        score = {"trial": best.number} | json.loads(result.read_text(encoding="utf-8"))
    finally:
        lock.release()
    study.set_user_attr(TEST_ATTR, score)
    return score


def _claim_when_free(run_dir: Path, patience_s: float = 600.0):
    """The run folder's lock, waiting while another worker holds it (scoring the same run).

    Raises:
        SweepError: the folder stayed locked (or unwritable) for ``patience_s``.
    """
    until = time.monotonic() + patience_s
    while True:
        try:
            return claim(run_dir, resume=True)
        except RunFolderError as err:
            if time.monotonic() > until:
                raise SweepError(f"cannot score the best run: {err}") from None
            time.sleep(1.0)
