"""The HTML report of a multi-label evaluation: its scores with intervals, a row per label, each label's
precision–recall curve (its threshold marked) and reliability diagram, and the images most wrong.

Drawn and embedded like the single-label report (``report``: matplotlib's Agg canvas, base64 PNGs,
one self-contained file written atomically).
"""

from __future__ import annotations

import html
import math
import os
import time
from pathlib import Path
from typing import Any

from tlstudio.core import atomic
from tlstudio.core.data.pipeline import load_for_model
from tlstudio.core.data.scan import in_folder
from tlstudio.core.results.multilabel_evaluation import MultiLabelEvaluation
from tlstudio.core.results.report import _STYLE, _png, _table, new_figure, run_sections

ERRORS_SHOWN = 12
COLUMNS = 4  # small plots a row, one per label
OPERATING_POINT = "#d62728"  # the threshold's marker, in the report and the app


def pr_curves_figure(labels: list[str], curves: dict[str, Any], per_label: dict[str, Any]) -> Any:
    """One small precision–recall plot per label (a step curve, recall across), the point of the label's
    stored threshold marked; a label without a positive image says so."""
    fig, axes = _grid(len(labels))
    for ax, name in zip(axes, labels, strict=False):
        row, curve = per_label[name], curves.get(name)
        if curve is None:
            ax.text(0.5, 0.5, "no positive image", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.plot(curve["recall"], curve["precision"], drawstyle="steps-post", color="C0")
            ax.plot(
                [row["recall"]],
                [row["precision"]],
                "o",
                color=OPERATING_POINT,
                label=f"threshold {row['threshold']:.2f}",
            )
            ax.legend(loc="lower left", fontsize=7)
        ap = "—" if row.get("ap") is None else f"{row['ap']:.3f}"
        ax.set(xlim=(0, 1.02), ylim=(0, 1.05), xlabel="recall", ylabel="precision")
        ax.set_title(f"{name} · AP {ap}", fontsize=9)
    return fig


def calibration_figure(labels: list[str], calibration: dict[str, Any]) -> Any:
    """One small reliability diagram per label: the share of images with the label against the mean
    probability in each bin, beside the diagonal of perfect calibration."""
    fig, axes = _grid(len(labels))
    for ax, name in zip(axes, labels, strict=False):
        ax.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
        c = calibration.get(name)
        if c is not None:
            filled = [b for b in c["bins"] if b["count"]]
            ax.plot(
                [b["mean_probability"] for b in filled], [b["fraction_positive"] for b in filled], "o-", ms=3
            )
        ece = "—" if c is None else f"{c['ece']:.3f}"
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean probability", ylabel="share with the label")
        ax.set_title(f"{name} · ECE {ece}", fontsize=9)
    return fig


def write_multilabel_report(
    path: str | os.PathLike[str],
    evaluation: MultiLabelEvaluation,
    data_dir: str | os.PathLike[str],
    *,
    title: str = "TL Studio evaluation",
    run_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report of a multi-label evaluation.

    Args:
        path: the HTML file.
        evaluation: the scores (``multilabel_evaluation``).
        data_dir: the folder the images' paths are relative to (a labels CSV's folder).
        title: the page's title.
        run_dir: a run folder: its learning curves and settings are added.

    Returns:
        ``path``.
    """
    m = evaluation.metrics
    labels = evaluation.labels
    bins = max((len(c["bins"]) for c in m.get("calibration", {}).values()), default=0)
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{time.strftime('%Y-%m-%d %H:%M')} · multi-label · {evaluation.num_images} images from "
        f"<code>{html.escape(str(data_dir))}</code> · {len(evaluation.skipped)} skipped</p>",
        "<h2>Summary</h2>",
        _table(["score", "value", "95% interval"], _summary(m)),
    ]
    if run_dir is not None:
        parts += run_sections(Path(run_dir))
    parts += [
        "<h2>Per label</h2>",
        _table(
            ["label", "threshold", "AP", "precision", "recall", "F1", "support", "ECE"],
            [
                [
                    name,
                    r["threshold"],
                    r["ap"],
                    r["precision"],
                    r["recall"],
                    r["f1"],
                    r["support"],
                    r.get("ece"),
                ]
                for name, r in m["per_label"].items()
            ],
        ),
        "<h2>Precision–recall curves</h2>",
        "<p>Per label; the red point is the label's decision threshold.</p>",
        f"<img src='{_png(pr_curves_figure(labels, m.get('pr_curves', {}), m['per_label']))}'>",
        "<h2>Calibration</h2>",
        f"<p>Per label, in {bins} bins of probability; macro ECE {_number(m.get('macro_ece'))}.</p>",
        f"<img src='{_png(calibration_figure(labels, m.get('calibration', {})))}'>",
        "<h2>Most wrong images</h2>",
        _errors(evaluation, Path(data_dir)),
    ]
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    return atomic.write_text(Path(path), text)


def _summary(m: dict[str, Any]) -> list[list[object]]:
    ci = m.get("intervals", {})
    rows = [
        ("macro mAP", "macro_map", m["macro_map"]),
        ("micro mAP", "micro_map", m["micro_map"]),
        ("macro F1 at the thresholds", "macro_f1", m["macro"]["f1"]),
        ("micro F1 at the thresholds", "micro_f1", m["micro"]["f1"]),
        ("subset accuracy", "subset_accuracy", m["subset_accuracy"]),
        ("Hamming loss", "hamming_loss", m["hamming_loss"]),
        ("macro expected calibration error", "", m.get("macro_ece")),
        ("labels per image", "", m["labels_per_image"]),
    ]
    return [
        [name, value, "–".join(f"{v:.3f}" for v in ci[key]) if key in ci else None]
        for name, key, value in rows
    ]


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def named(names: list[str]) -> str:
    """Label names for the page, escaped; "none" for none."""
    return html.escape(", ".join(names)) if names else "none"


def _grid(count: int) -> tuple[Any, list[Any]]:
    """A figure of ``count`` small plots, ``COLUMNS`` a row."""
    columns = max(1, min(COLUMNS, count))
    rows = max(1, math.ceil(count / columns))
    fig = new_figure(2.6 * columns, 2.4 * rows)
    axes = [fig.add_subplot(rows, columns, i + 1) for i in range(max(count, 1))]
    return fig, axes


def _errors(evaluation: MultiLabelEvaluation, data_dir: Path) -> str:
    wrong = evaluation.errors()[:ERRORS_SHOWN]
    if not wrong:
        return "<p>No errors.</p>"
    cells = []
    for p in wrong:
        try:
            pixels = load_for_model(in_folder(data_dir, p["path"]), 128)
        except Exception:  # a file gone since the evaluation is left out of the report
            continue
        cells.append(
            f"<figure><img class='thumb' src='{_png(pixels)}'><figcaption>{html.escape(p['path'])}<br>"
            f"true <b>{named(p['true'])}</b><br>missed <b>{named(p['missed'])}</b>, "
            f"false <b>{named(p['false'])}</b></figcaption></figure>"
        )
    return (
        "<p>Images with a missed or a false label, the most wrong first.</p>"
        "<div class='gallery'>" + "".join(cells) + "</div>"
    )
