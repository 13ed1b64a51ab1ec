"""A project's run history read back from the run folders: settings, data hash, results, diffs."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tlstudio.core.backbone import kerashub
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.paired import EvaluatedRun, compare_pair, score
from tlstudio.core.results.run_folder import run_status
from tlstudio.core.settings import TrainSettings, setting_name

# Metrics stored counting from 0 (Keras' epoch index: ``history.json``'s list, the checkpoints and a
# resumed run read it so, and older runs wrote it so) but shown to a person counting from 1, as the
# Train panel, the curves and the terminal's "epoch 3/20" do.
SHOWN_FROM_ONE = ("best_epoch",)


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


def project_runs(runs: Sequence[Mapping[str, object]]) -> list[RunRecord]:
    """The runs a project recorded, oldest first, skipping folders that are gone."""
    return [load_run(str(r["run_dir"])) for r in runs if Path(str(r["run_dir"])).is_dir()]


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


def latest_restorable_run(runs: Sequence[Mapping[str, object]]) -> Path | None:
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


def shown_metric(key: str, value: object) -> object:
    """A stored metric as a person reads it: ``best_epoch`` counted from 1, the rest as stored."""
    if key in SHOWN_FROM_ONE and isinstance(value, int) and not isinstance(value, bool):
        return value + 1
    return value


def tested_run(record: RunRecord) -> EvaluatedRun:
    """What the paired comparison needs of a run: its metrics, its data's fingerprint and the
    per-image predictions of its ``evaluation.json`` (None when it has none)."""
    predictions = read_json(record.run_dir / files.EVALUATION).get("predictions")
    usable = isinstance(predictions, list) and all(
        isinstance(p, dict) and {"path", "true", "predicted"} <= set(p) for p in predictions
    )
    predictions = predictions if usable else None
    return EvaluatedRun(record.name, record.metrics, predictions, record.manifest_fingerprint)


def compare_runs(a: RunRecord, b: RunRecord) -> dict[str, object]:
    """Side by side: settings that differ, whether the data was the same, each run's test accuracy
    with its 95% interval, the verdict on the difference, every metric of both.

    Returns:
        ``runs`` (the two names); ``same_data`` (None: a run does not say, so it cannot be told);
        ``settings_diff`` (rows of ``setting`` — the dotted key —, ``label`` — the app's name —,
        ``option`` — the name with the CLI option —, and each run's value); ``accuracy`` (per run:
        ``accuracy``, ``low``, ``high``, ``images``); ``verdict`` (``paired.Verdict.to_dict``: its
        ``text`` is the line to show); ``metrics`` (rows of ``metric`` and each run's value, as a
        person reads it: ``best_epoch`` counted from 1).
    """
    keys = sorted(set(a.metrics) | set(b.metrics))
    ta, tb = tested_run(a), tested_run(b)
    return {
        "runs": [a.name, b.name],
        # None: one run does not say (its record is missing or unreadable), so it cannot be told
        "same_data": None
        if a.manifest_fingerprint is None or b.manifest_fingerprint is None
        else a.manifest_fingerprint == b.manifest_fingerprint,
        "settings_diff": [
            {"setting": k, "label": setting_name(k), "option": setting_name(k, True), a.name: x, b.name: y}
            for k, x, y in diff_settings(
                a.settings | {"weights": a.weights}, b.settings | {"weights": b.weights}
            )
        ],
        "accuracy": [score(ta).to_dict(), score(tb).to_dict()],
        "verdict": compare_pair(ta, tb).to_dict(),
        "metrics": [
            {"metric": k} | {r.name: shown_metric(k, r.metrics.get(k)) for r in (a, b)} for k in keys
        ],
    }


def comparison_html(result: dict[str, object]) -> str:
    """``compare_runs``'s result as the HTML the app shows, every piece of text escaped (run folder
    names, backbone paths and values may hold ``<``, ``&`` or quotes).

    Returns:
        A heading with the verdict, a table of test accuracies with intervals, the settings that
        differ (by the app's labels) and the metrics.
    """
    a, b = result["runs"]
    e = html.escape
    same = {True: "yes", False: "no", None: "unknown (a run's record is missing or unreadable)"}
    out = [
        f"<h3>{e(a)} vs {e(b)}</h3><p>Same data: <b>{same[result['same_data']]}</b></p>",
        f"<p><b>{e(result['verdict']['text'])}</b></p>",
        f"<table border=1 cellpadding=3><tr><th></th><th>{e(a)}</th><th>{e(b)}</th></tr>",
    ]
    sa, sb = result["accuracy"]
    for label, cells in (
        ("test accuracy", (_cell(sa["accuracy"]), _cell(sb["accuracy"]))),
        ("95% interval", (e(_span(sa)), e(_span(sb)))),
        ("test images", (_cell(sa["images"] or None), _cell(sb["images"] or None))),
    ):
        out.append(f"<tr><td>{label}</td><td>{cells[0]}</td><td>{cells[1]}</td></tr>")
    out.append("</table><br>")
    if result["settings_diff"]:
        out.append(f"<table border=1 cellpadding=3><tr><th>setting</th><th>{e(a)}</th><th>{e(b)}</th></tr>")
        out += [
            f"<tr><td>{e(d['label'])}</td><td>{_cell(d[a])}</td><td>{_cell(d[b])}</td></tr>"
            for d in result["settings_diff"]
        ]
        out.append("</table><br>")
    else:
        out.append("<p>Same settings.</p>")
    out.append(f"<table border=1 cellpadding=3><tr><th>metric</th><th>{e(a)}</th><th>{e(b)}</th></tr>")
    out += [
        f"<tr><td>{e(_metric_label(m['metric']))}</td><td>{_cell(m[a])}</td><td>{_cell(m[b])}</td></tr>"
        for m in result["metrics"]
    ]
    return "".join(out) + "</table>"


def _metric_label(key: str) -> str:
    return key.replace("_", " ") + (" (from 1)" if key in SHOWN_FROM_ONE else "")


def _span(scored: dict[str, object]) -> str:
    low, high = scored.get("low"), scored.get("high")
    return "—" if low is None or high is None else f"{low:.2f}–{high:.2f}"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "—" if value is None else html.escape(str(value))


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
