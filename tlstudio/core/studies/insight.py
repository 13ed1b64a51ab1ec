"""What a sweep's trials say about its parameters: Optuna's own parameter importances and its
matplotlib plots (parallel coordinates, slice, importances), drawn from the folder's ``trials.json``.

The trials are rebuilt as an in-memory Optuna study from what the workers write (each parameter's
distribution included), so a view or ``tlstudio runs`` needs no connection to the study's storage.
Importances are Optuna's fANOVA with a fixed seed: the same trials give the same numbers.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlstudio.core.results.run_history import read_json
from tlstudio.core.settings import SEED
from tlstudio.core.studies.board import SNAPSHOT

MIN_TRIALS = 2  # complete trials before importances and plots mean anything
PLOTS = ("parallel coordinates", "slice", "importance")
_PYPLOT = threading.Lock()  # Optuna's plots draw through pyplot's global state: one at a time


@dataclass
class Insight:
    """The study's complete trials as Optuna sees them.

    Attributes:
        trials: the complete trials' numbers, in order.
        importance: parameter → importance (summing to 1), or None with ``reason``.
        reason: why there are no importances or plots (too few trials, no parameter varies).
        figures: plot name (``PLOTS``) → matplotlib ``Figure`` (empty without ``draw``).
    """

    trials: list[int]
    importance: dict[str, float] | None
    reason: str | None
    figures: dict[str, Any] = field(default_factory=dict)


def distributions_json(study) -> dict[str, str]:
    """Each parameter's Optuna distribution as JSON (what ``study_from_snapshot`` rebuilds from)."""
    from optuna.distributions import distribution_to_json

    out: dict[str, str] = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            out.setdefault(name, distribution_to_json(dist))
    return out


def study_from_snapshot(folder: str | os.PathLike[str]):
    """An in-memory Optuna study holding the sweep's complete trials (parameters and values), or a
    reason (str) it cannot be made (no ``trials.json``, or one written without distributions)."""
    import optuna
    from optuna.distributions import json_to_distribution

    snapshot = read_json(Path(folder) / SNAPSHOT)
    if not snapshot:
        return f"{folder} has no {SNAPSHOT} yet"
    dists = {k: json_to_distribution(v) for k, v in (snapshot.get("distributions") or {}).items()}
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction=snapshot.get("direction", "maximize"))
    for row in snapshot.get("trials") or []:
        if row["state"] != "complete" or row.get("value") is None:
            continue
        if any(name not in dists for name in row["params"]):
            return f"{SNAPSHOT} has no parameter distributions (written by an older worker)"
        used = {name: dists[name] for name in row["params"]}
        trial = optuna.trial.create_trial(params=row["params"], distributions=used, value=row["value"])
        study.add_trial(trial)
    return study


def insight(study, draw: bool = False) -> Insight:
    """Importances (and with ``draw`` the three plots) of a study's complete trials.

    Args:
        study: an Optuna study (``study_from_snapshot``'s, or one loaded from its storage).
        draw: also draw ``PLOTS`` with ``optuna.visualization.matplotlib``.

    Returns:
        The ``Insight``; with fewer than ``MIN_TRIALS`` complete trials, or no parameter that
        varies, no importances and no figures, and the reason.

    Example:
        >>> insight(study_from_snapshot("sweeps/flowers")).importance
        {'learning_rate': 0.71, 'fine_tune_blocks': 0.29}
    """
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    numbers = [t.number for t in complete]
    if len(complete) < MIN_TRIALS:
        return Insight(
            numbers, None, f"Importance and plots need {MIN_TRIALS} complete trials ({len(complete)} so far)."
        )
    varied = sorted({n for t in complete for n, d in t.distributions.items() if not d.single()})
    if not varied:
        return Insight(numbers, None, "No parameter varies between trials: nothing to compare.")
    if len({t.value for t in complete}) < 2:  # (fANOVA finds no variance to share out)
        return Insight(
            numbers, None, "Every complete trial has the same value: no parameter made a difference."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        importance = optuna.importance.get_param_importances(study, evaluator=_evaluator(), params=varied)
        result = Insight(numbers, {k: float(v) for k, v in importance.items()}, None)
        if draw:
            result.figures = _figures(study, varied)
    return result


def _evaluator():
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(seed=SEED)


def _figures(study, params: list[str]) -> dict[str, Any]:
    """Optuna's matplotlib plots, drawn with Agg and released from pyplot (kept as ``Figure``s)."""
    import matplotlib

    figures: dict[str, Any] = {}
    with _PYPLOT:
        matplotlib.use("agg")  # (Optuna draws through pyplot: no window, whatever the app's toolkit)
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure
        from optuna.visualization import matplotlib as views

        with matplotlib.rc_context(), warnings.catch_warnings():  # (Optuna sets ggplot's style globally)
            warnings.simplefilter("ignore", UserWarning)  # (matplotlib's about one trial's flat axes)
            drawn = {
                "parallel coordinates": views.plot_parallel_coordinate(study, params=params),
                "slice": views.plot_slice(study, params=params),
                "importance": views.plot_param_importances(study, evaluator=_evaluator(), params=params),
            }
            for name, axes in drawn.items():
                first = axes.flat[0] if hasattr(axes, "flat") else axes
                figure = first.figure
                assert isinstance(figure, Figure)  # (an Optuna plot is a figure of its own)
                figure.set_size_inches(8, 4)
                figure.tight_layout()
                plt.close(figure)  # (pyplot forgets it; the Figure can be drawn on a FigureCanvasAgg)
                figures[name] = figure
    return figures


def describe(importance: dict[str, float] | None, reason: str | None = None) -> str:
    """Importances as one line (``learning_rate 0.71, dropout 0.29``), else the reason."""
    if not importance:
        return reason or ""
    return ", ".join(f"{name} {value:.2f}" for name, value in importance.items())
