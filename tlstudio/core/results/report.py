"""One self-contained HTML report per evaluation: settings, curves, metrics, confusion matrix,
reliability diagram and the worst errors (with Grad-CAM where the model allows).

Pictures are drawn with matplotlib's Agg canvas (no GUI backend) and embedded as base64 PNGs, so
the file can be mailed or opened anywhere. Written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tlstudio.core import atomic
from tlstudio.core.data.pipeline import load_for_model
from tlstudio.core.data.scan import in_folder
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.evaluation import Evaluation
from tlstudio.core.results.gradcam import overlay
from tlstudio.core.results.metrics import wilson_interval
from tlstudio.core.results.report_steps import soup_section
from tlstudio.core.results.run_history import flatten, read_json

ERRORS_SHOWN = 12


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig_or_array) -> str:
    buffer = io.BytesIO()
    if isinstance(fig_or_array, np.ndarray):
        Image.fromarray(fig_or_array).save(buffer, format="PNG")
    else:
        fig_or_array.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def confusion_figure(labels: list[str], matrix: list[list[int]]):
    """Heat map of counts, row-normalised colours, the counts written in the cells."""
    cm = np.asarray(matrix, dtype=float)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = min(2.5 + 0.45 * len(labels), 12)
    fig = new_figure(size + 1, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of the true class")
    return fig


def reliability_figure(bins: list[dict[str, float]], ece: float):
    """Accuracy against confidence per bin, with the diagonal of perfect calibration."""
    fig = new_figure(4.2, 3.8)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    filled = [b for b in bins if b["count"]]
    ax.bar(
        [(b["lower"] + b["upper"]) / 2 for b in filled],
        [b["accuracy"] for b in filled],
        width=[b["upper"] - b["lower"] for b in filled],
        edgecolor="black",
        alpha=0.7,
        label="accuracy in bin",
    )
    ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o", color="C3")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"ECE {ece:.3f}")
    ax.legend(loc="upper left")
    return fig


def curves_figure(epochs: list[dict[str, float]]):
    """Loss and accuracy per epoch, training and validation."""
    fig = new_figure(8, 3.2)
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        x = range(1, len(epochs) + 1)
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            values = [e.get(key, np.nan) for e in epochs]
            if not all(np.isnan(values)):
                ax.plot(x, values, style, label=key)
        phases = [n for n in range(1, len(epochs)) if epochs[n].get("phase") != epochs[n - 1].get("phase")]
        for n in phases:
            ax.axvline(n + 0.5, color="grey", lw=0.8)
        ax.set(xlabel="epoch", title=metric)
        if ax.get_legend_handles_labels()[1]:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
    return fig


def write_report(
    path: str | os.PathLike[str],
    evaluation: Evaluation,
    data_dir: str | os.PathLike[str],
    *,
    title: str = "TL Studio evaluation",
    run_dir: str | os.PathLike[str] | None = None,
    gradcam=None,
) -> Path:
    """Write the report; ``run_dir`` adds its settings and curves, ``gradcam`` (a ``GradCam``)
    adds heat maps to the errors shown."""
    path = Path(path)
    m = evaluation.metrics
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{time.strftime('%Y-%m-%d %H:%M')} · {evaluation.num_images} images from "
        f"<code>{html.escape(str(data_dir))}</code> · {len(evaluation.skipped)} skipped</p>",
        "<h2>Summary</h2>",
        _table(
            ["metric", "value"],
            [[k, v] for k, v in _summary(m, evaluation.num_images).items()],
        ),
    ]
    if run_dir is not None:
        parts += run_sections(Path(run_dir))
    parts += [
        "<h2>Per class</h2>",
        _table(
            ["class", "precision", "recall", "F1", "support", "AUC (one-vs-rest)"],
            [
                [name, r["precision"], r["recall"], r["f1"], r["support"], m["auc"]["per_class"].get(name)]
                for name, r in m["per_class"].items()
            ],
        ),
        "<h2>Confusion matrix</h2>",
        f"<img src='{_png(confusion_figure(evaluation.labels, m['confusion_matrix']))}'>",
        "<h2>Calibration</h2>",
        f"<img src='{_png(reliability_figure(m['reliability'], m['ece']))}'>",
        "<h2>Most confidently wrong</h2>",
        _errors(evaluation, Path(data_dir), gradcam),
    ]
    body = "\n".join(parts)
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return atomic.write_text(path, text)


def run_sections(run_dir: Path) -> list[str]:
    """The HTML of a run's learning curves and settings (those it has)."""
    parts = []
    history = read_json(run_dir / files.HISTORY)
    if history and history.get("epochs"):
        parts += ["<h2>Learning curves</h2>", f"<img src='{_png(curves_figure(history['epochs']))}'>"]
    parts += soup_section(history, _png, new_figure)
    settings = read_json(run_dir / files.SETTINGS)
    if settings:
        flat = flatten(settings)
        parts += ["<h2>Settings</h2>", _table(["setting", "value"], [[k, v] for k, v in flat.items()])]
    weights = (read_json(run_dir / files.RUN_JSON) or {}).get("class_weights")
    if weights:  # what class_weights came to (multi-label: each label's positive weight in the loss)
        parts += ["<h2>Class weights</h2>", _table(["class", "weight"], [[k, v] for k, v in weights.items()])]
    return parts


def _summary(m: dict[str, object], n: int) -> dict[str, object]:
    out = {"accuracy": m["accuracy"]}
    if n:
        low, high = wilson_interval(round(m["accuracy"] * n), n)
        out["accuracy, 95% interval (Wilson)"] = f"{low:.3f}–{high:.3f} on {n} images" + (
            ": a small split, read the accuracy as this range" if n < 100 else ""
        )
    ci = m.get("intervals", {})
    for key, name in (("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro F1")):
        if key in m:
            out[name] = m[key]
        if key in ci:
            out[f"{name}, 95% interval (bootstrap)"] = f"{ci[key][0]:.3f}–{ci[key][1]:.3f}"
    out.update({f"top-{k} accuracy": v for k, v in m["top_k"].items() if k != "1"})
    out.update(
        {
            "weighted F1": m["averages"]["weighted"]["f1"],
            "macro ROC AUC (one-vs-rest)": m["auc"]["macro"],
            "log loss": m["loss"],
            "expected calibration error": m["ece"],
        }
    )
    return out


def _errors(evaluation: Evaluation, data_dir: Path, gradcam) -> str:
    wrong = evaluation.errors()[:ERRORS_SHOWN]
    if not wrong:
        return "<p>No errors.</p>"
    cells = []
    for p in wrong:
        try:
            pixels = load_for_model(in_folder(data_dir, str(p["path"])), 128)
        except Exception:  # a file gone since the evaluation is left out of the report
            continue
        images = [f"<img class='thumb' src='{_png(pixels)}'>"]
        if gradcam is not None:
            small = load_for_model(in_folder(data_dir, str(p["path"])), gradcam.image_size)
            heat, _, _ = gradcam.heatmap(small, evaluation.labels.index(str(p["predicted"])))
            images.append(f"<img class='thumb' src='{_png(overlay(pixels, heat))}'>")
        cells.append(
            "<figure>"
            + "".join(images)
            + f"<figcaption>{html.escape(str(p['path']))}<br>true <b>{html.escape(str(p['true']))}</b>,"
            f" predicted <b>{html.escape(str(p['predicted']))}</b> ({p['confidence']:.2f})"
            "</figcaption></figure>"
        )
    note = "<p>Right of each image: Grad-CAM for the predicted class.</p>" if gradcam is not None else ""
    return note + "<div class='gallery'>" + "".join(cells) + "</div>"


def _table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:.4f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; width: 270px; font-size: 12px; }
.thumb { width: 128px; height: 128px; image-rendering: pixelated; margin-right: 4px; }
"""
