"""A project's run history read back from the run folders: settings, data hash, results, diffs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tlstudio.core.backbone import kerashub
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_folder import run_status
from tlstudio.core.settings import TrainSettings


@dataclass(frozen=True)
class RunRecord:
    """What one run folder says about itself."""

    run_dir: Path
    status: str
    backbone: str
    started: str
    seconds: float | None
    manifest_fingerprint: str | None
    metrics: dict[str, float]
    settings: dict[str, object]

    @property
    def name(self) -> str:
        """The folder name."""
        return self.run_dir.name

    @property
    def weights(self) -> str:
        """The run's starting weights in words (see ``describe_weights``)."""
        return describe_weights(self.settings)

    def train_settings(self) -> TrainSettings:
        """The run's settings, to clone into a new run."""
        return TrainSettings.from_dict(self.settings)


def load_run(run_dir: str | os.PathLike[str]) -> RunRecord:
    """Read run.json, settings.json and metrics.json of a run folder (missing parts stay empty)."""
    run_dir = Path(run_dir)
    info = run_status(run_dir)  # "interrupted" when it says running but its process is gone
    settings = read_json(run_dir / files.SETTINGS)
    metrics = read_json(run_dir / files.METRICS) or info.get("metrics") or {}
    return RunRecord(
        run_dir=run_dir,
        status=str(info.get("status", "unknown")),
        backbone=str(settings.get("backbone") or info.get("backbone") or ""),
        started=str(info.get("started", "")),
        seconds=info.get("seconds"),
        manifest_fingerprint=info.get("manifest_fingerprint"),
        metrics=metrics,
        settings=settings,
    )


def describe_weights(settings: dict[str, object]) -> str:
    """What a run started from: "imagenet", "none (from scratch)", a weights file, or, for a model
    file or SavedModel backbone, its own weights (the ``weights`` setting does not apply to those),
    and for a KerasHub preset, the preset's.

    Args:
        settings: a run's settings as saved (``settings.json``).

    Returns:
        A short phrase for tables.
    """
    weights = str(settings.get("weights") or "imagenet")
    if weights == "none":
        return "none (from scratch)"
    backbone = str(settings.get("backbone") or "")
    if kerashub.is_kerashub_source(backbone):
        return "the preset's own"
    own = backbone.lower().endswith((".keras", ".h5", ".hdf5")) or "/" in backbone or "\\" in backbone
    if own:
        return "the model's own"
    return weights if weights == "imagenet" else Path(weights).name


def project_runs(runs: list[dict[str, object]]) -> list[RunRecord]:
    """The runs a project recorded, oldest first, skipping folders that are gone."""
    return [load_run(r["run_dir"]) for r in runs if Path(str(r["run_dir"])).is_dir()]


FINISHED_WITH_MODEL = ("completed", "stopped")  # statuses whose run folder holds a model worth using


def best_run(records: list[RunRecord]) -> RunRecord | None:
    """The run to act on when a person chose none: of the finished runs with a model, the best by
    validation accuracy, then by validation loss, then the newest (never by test scores: choosing on
    the test split would spend it).

    Args:
        records: a project's runs (``project_runs``), oldest first.

    Returns:
        That run, or None when no run finished with a model.
    """
    usable = [
        (i, r)
        for i, r in enumerate(records)
        if r.status in FINISHED_WITH_MODEL and (r.run_dir / files.MODEL).is_file()
    ]
    if not usable:
        return None

    def key(item: tuple[int, RunRecord]) -> tuple[float, float, int]:
        i, r = item
        accuracy = r.metrics.get("val_accuracy")
        loss = r.metrics.get("val_loss")
        return (
            float(accuracy) if isinstance(accuracy, (int, float)) else -1.0,
            -float(loss) if isinstance(loss, (int, float)) else float("-inf"),
            i,
        )

    return max(usable, key=key)[1]


def latest_restorable_run(runs: list[dict[str, object]]) -> Path | None:
    """The newest of a project's runs that has a best checkpoint (what ``suggest`` needs), or None."""
    for run in reversed(runs):
        folder = Path(str(run["run_dir"]))
        if (folder / files.CHECKPOINTS / files.BEST_WEIGHTS).is_file():
            return folder
    return None


def diff_settings(a: dict[str, object], b: dict[str, object]) -> list[tuple[str, object, object]]:
    """(setting, value in a, value in b) for every setting that differs; nested keys dotted."""
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def compare_runs(a: RunRecord, b: RunRecord) -> dict[str, object]:
    """Side by side: settings that differ, whether the data was the same (None: cannot be told),
    every metric of both."""
    keys = sorted(set(a.metrics) | set(b.metrics))
    return {
        "runs": [a.name, b.name],
        # None: one run does not say (its record is missing or unreadable), so it cannot be told
        "same_data": None
        if a.manifest_fingerprint is None or b.manifest_fingerprint is None
        else a.manifest_fingerprint == b.manifest_fingerprint,
        "settings_diff": [
            {"setting": k, a.name: x, b.name: y}
            for k, x, y in diff_settings(
                a.settings | {"weights": a.weights}, b.settings | {"weights": b.weights}
            )
        ],
        "metrics": [{"metric": k, a.name: a.metrics.get(k), b.name: b.metrics.get(k)} for k in keys],
    }


def flatten(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Nested dicts as one level with dotted keys."""
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_json(path: Path) -> dict:
    """A JSON object from a run folder; {} when the file is missing, broken or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
