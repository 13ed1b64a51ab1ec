"""Did transfer help? Several runs on one split with the same settings, side by side.

``compare`` trains each candidate (a backbone and/or freeze plan, or the from-scratch baseline) on
the same manifest with the same settings and budget, then measures what a person choosing between
them needs: test accuracy, macro F1, training time, model size, and inference latency per image on
this machine (the exported SavedModel, batch of one, median of repeated calls). Each test accuracy
carries its 95% interval, and every candidate is set against the best one: image by image
(McNemar's exact test on the shared test split, see ``results.paired``), so a difference the test
images cannot support is called a tie.
"""

from __future__ import annotations

import csv
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from tlstudio.core import atomic
from tlstudio.core import events as ev
from tlstudio.core.data.split import Manifest
from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.paired import against_best, score
from tlstudio.core.results.run_history import load_run, tested_run
from tlstudio.core.settings import TrainSettings
from tlstudio.core.training.recipe import scratch_epochs

LATENCY_CALLS = 20


@dataclass(frozen=True)
class Candidate:
    """One contender: a name for the table and its settings."""

    name: str
    settings: TrainSettings


@dataclass
class ComparisonRow:
    """What one candidate achieved."""

    name: str
    backbone: str
    status: str
    run_dir: str
    test_accuracy: float | None = None
    test_accuracy_low: float | None = None  # its 95% Wilson interval
    test_accuracy_high: float | None = None
    test_images: int = 0
    test_macro_f1: float | None = None
    train_seconds: float = 0.0
    model_mb: float | None = None
    latency_ms: float | None = None
    epochs: int = 0
    error: str | None = None
    tied_with_best: bool | None = None  # the best itself, and those the test images cannot tell from it
    versus_best: str | None = None  # the verdict against the best, one line (None for the best)
    history: list[dict[str, object]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, without the per-epoch history."""
        return {k: v for k, v in asdict(self).items() if k != "history"}


def baseline_settings(settings: TrainSettings) -> TrainSettings:
    """The same architecture from random weights, every layer trained, the same epoch budget."""
    return settings.but(
        weights="none",
        freeze=FreezePlan("none", train_batchnorm=True),
        epochs=scratch_epochs(settings),
        fine_tune_epochs=0,
    )


def candidates_for(
    base: TrainSettings,
    backbones: list[str],
    plans: list[str] | None = None,
    baseline: bool = False,
) -> list[Candidate]:
    """Every backbone × freeze plan, then the baseline of the first backbone when asked."""

    def short(backbone: str) -> str:
        return Path(backbone).stem if os.sep in backbone or "." in backbone else backbone

    out = []
    for backbone in backbones:
        for plan in plans or [None]:
            s = base.but(backbone=backbone)
            if plan is not None:
                s = s.but(freeze=FreezePlan.parse(plan))
            out.append(Candidate(short(backbone) + (f" [{plan}]" if plan else ""), s))
    if baseline and backbones:  # its own freeze plan (none), so not named after the first plan
        out.append(Candidate(f"{short(backbones[0])} from scratch", baseline_settings(out[0].settings)))
    return out


def compare(
    candidates: list[Candidate],
    data_dir: str | os.PathLike[str],
    manifest: Manifest,
    out_dir: str | os.PathLike[str],
    *,
    on_event: ev.EventCallback | None = None,
    stop: threading.Event | None = None,
) -> list[ComparisonRow]:
    """Train every candidate into ``out_dir/NN-name`` and write comparison.json / .csv / .png."""
    from tlstudio.core.training.session import TrainingSession

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.save(out_dir / files.MANIFEST)
    rows = []
    for i, candidate in enumerate(candidates, start=1):
        if stop is not None and stop.is_set():
            break
        run_dir = out_dir / f"{i:02d}-{_slug(candidate.name)}"
        started = time.perf_counter()
        session = TrainingSession(
            candidate.settings, data_dir, run_dir, manifest=manifest, on_event=on_event, stop=stop
        )
        result = session.run()
        seconds = time.perf_counter() - started
        history = session.history["epochs"]
        row = ComparisonRow(
            name=candidate.name,
            backbone=candidate.settings.backbone,
            status=result.status,
            run_dir=str(run_dir),
            test_accuracy=result.metrics.get("test_accuracy"),
            test_macro_f1=result.metrics.get("test_macro_f1"),
            train_seconds=round(seconds, 2),
            epochs=len(history),
            error=result.error,
            history=history,
        )
        if result.export_dir is not None:
            row.model_mb = round(_size(run_dir / files.SAVED_MODEL) / 1e6, 3)
            row.latency_ms = round(latency_ms(run_dir), 3)
        rows.append(row)
        judge(rows)
        _write(out_dir, rows)
    return rows


def judge(rows: list[ComparisonRow]) -> None:
    """Fill each row's interval and its verdict against the best row (highest test accuracy),
    reading every run's per-image test predictions from its folder."""
    tested = [replace(tested_run(load_run(r.run_dir)), name=r.name) for r in rows]
    for row, run in zip(rows, tested, strict=True):
        s = score(run)
        row.test_accuracy_low = None if s.low is None else round(s.low, 4)
        row.test_accuracy_high = None if s.high is None else round(s.high, 4)
        row.test_images = s.images
        row.tied_with_best, row.versus_best = None, None
    verdicts = {v.b: v for v in against_best(tested)}
    for row in rows:
        verdict = verdicts.get(row.name)
        if verdict is None:
            row.tied_with_best = True if row.test_accuracy is not None else None
        elif row.test_accuracy is not None:
            row.tied_with_best = verdict.outcome != "better"
            row.versus_best = verdict.text


def latency_ms(run_dir: str | os.PathLike[str], calls: int = LATENCY_CALLS) -> float:
    """Median milliseconds per image of the exported SavedModel, batch of one, after a warm-up."""
    from tlstudio.core.results.evaluation import load_exported

    model = load_exported(run_dir)
    size = model.image_size
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    for _ in range(3):
        model.predict(image)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def format_table(rows: list[ComparisonRow]) -> str:
    """The comparison as an aligned text table, then each candidate's verdict against the best."""

    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    def span(r):
        if r.test_accuracy_low is None or r.test_accuracy_high is None:
            return "—"
        return f"{r.test_accuracy_low:.2f}–{r.test_accuracy_high:.2f}"

    width = max([len(r.name) for r in rows] + [9])
    lines = [
        f"{'':2}{'candidate':<{width}}  {'status':<9} {'test acc':>8} {'95% interval':>12} {'images':>6} "
        f"{'macro F1':>8} {'train s':>8} {'epochs':>6} {'size MB':>8} {'ms/image':>8}"
    ]
    for r in rows:
        mark = "=" if r.tied_with_best else " "
        lines.append(
            f"{mark:2}{r.name:<{width}}  {r.status:<9} {fmt(r.test_accuracy, '.3f'):>8} {span(r):>12} "
            f"{r.test_images or '—':>6} {fmt(r.test_macro_f1, '.3f'):>8} {r.train_seconds:>8.1f} "
            f"{r.epochs:>6} {fmt(r.model_mb, '.2f'):>8} {fmt(r.latency_ms, '.2f'):>8}"
        )
    verdicts = [r.versus_best for r in rows if r.versus_best]
    if verdicts:
        lines.append("")
        lines += verdicts
        lines.append(
            "= marks the best and the candidates its test images cannot tell from it (95% intervals: Wilson)."
        )
    return "\n".join(lines)


def comparison_figure(rows: list[ComparisonRow]):
    """Validation accuracy and loss per epoch of every candidate, overlaid."""
    from tlstudio.core.results.report import new_figure

    fig = new_figure(9, 3.4)
    for i, metric in enumerate(("val_accuracy", "val_loss")):
        ax = fig.add_subplot(1, 2, i + 1)
        for r in rows:
            values = [e.get(metric) for e in r.history]
            if any(v is not None for v in values):
                ax.plot(range(1, len(values) + 1), values, label=r.name)
        ax.set(xlabel="epoch", title=metric.replace("_", " "))
        ax.legend(fontsize=8)
    return fig


def _write(out_dir: Path, rows: list[ComparisonRow]) -> None:
    data = [r.to_dict() for r in rows]
    atomic.write_json(out_dir / "comparison.json", data)
    with (
        atomic.replacing(out_dir / "comparison.csv") as tmp,
        open(tmp, "w", newline="", encoding="utf-8") as f,
    ):
        writer = csv.DictWriter(f, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    with atomic.replacing(out_dir / "comparison.png") as tmp:
        comparison_figure(rows).savefig(tmp)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")[:40] or "run"
