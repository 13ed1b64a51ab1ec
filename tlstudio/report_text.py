"""Plain-text rendering of the dataset doctor's report for the terminal, and ``counted``: a number
with its noun in the right number ("1 layer", "2 layers"), for the app and the CLI alike."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (nothing heavy at import: the app's widgets import ``counted`` from here)
    from tlstudio.core.data.health import DatasetReport
    from tlstudio.core.data.split import Manifest

from tlstudio.core.wording import counted  # (re-exported: the app and the CLI import it from here)

_MAX_LISTED = 50


def format_report(
    report: DatasetReport, manifest: Manifest | None = None, manifest_path: Path | None = None
) -> str:
    """The report as aligned text a person can read top to bottom."""
    lines = [
        f"Dataset: {report.source}",
        f"  {counted(len(report.classes), 'label' if report.task == 'multi_label' else 'class')}, "
        f"{counted(len(report.images), 'usable image')}, "
        f"{len(report.skipped)} skipped",
        "",
    ]
    if report.classes:
        noun = "label" if report.task == "multi_label" else "class"
        width = max(len(noun), *(len(c) for c in report.classes))
        weighed = bool(report.class_weights)  # (multi-label: each label's positive weight)
        lines.append(f"  {noun:<{width}}  {'images':>6}" + (f"  {'weight':>6}" if weighed else ""))
        for label, n in report.classes.items():
            weight = f"  {report.class_weights.get(label, 0.0):>6.2f}" if weighed else ""
            lines.append(f"  {label:<{width}}  {n:>6}{weight}")
        if report.imbalance_ratio is not None:
            lines.append(f"  imbalance (largest:smallest) {report.imbalance_ratio:.2f}:1")
        lines.append("")
    if report.task == "multi_label":
        lines += [*multi_label_summary(report), ""]
    if report.formats:
        lines.append("Formats: " + ", ".join(f"{k} {v}" for k, v in report.formats.items()))
    stats = report.size_stats
    if stats:
        w, h = stats["width"], stats["height"]
        lines.append(
            f"Image sizes: width {w['min']}–{w['max']} (median {w['median']:g}), "
            f"height {h['min']}–{h['max']} (median {h['median']:g})"
        )
        hist = ", ".join(f"{k}: {v}" for k, v in stats["short_side_histogram"].items())
        lines.append(f"  short side: {hist}")
    lines.append(
        f"Duplicates: {len(report.duplicates)} group(s) of identical files"
        if report.duplicates
        else "Duplicates: none"
    )
    for group in report.duplicates[:_MAX_LISTED]:
        lines.append("  = " + "  ==  ".join(group.paths))
    if report.near_duplicates:
        lines.append(
            f"Near-duplicates: {counted(len(report.near_duplicates), 'group')} of look-alike files, "
            "each kept in one split"
        )
    for group in report.near_duplicates[:_MAX_LISTED]:
        mark = "≠" if group.cross_class else "≈"
        lines.append(
            f"  {mark} " + "  ~  ".join(group.paths) + ("  (different labels)" if group.cross_class else "")
        )
    quality = [(q.path, ", ".join(q.reasons)) for q in report.quality_issues]
    lines += _listed(f"Quality, possibly poor examples ({counted(len(quality), 'image')}):", quality)
    lines += _listed(f"Skipped ({len(report.skipped)}):", [(x.path, x.reason) for x in report.skipped])
    if report.warnings:
        lines += ["", "Warnings:"]
        lines += [f"  ! {w}" for w in report.warnings]
    if manifest is not None:
        from tlstudio.core.data.split import SPLITS

        counts = manifest.counts()
        summary = " / ".join(f"{s} {sum(counts[s].values())}" for s in SPLITS)
        lines += [
            "",
            f"Split manifest: {manifest_path} ({summary})",
            f"  fingerprint {manifest.fingerprint()[:16]}",
        ]
    lines.append("")
    lines.append("Usable: yes" if report.usable else f"Usable: no — {report.problem}")
    return "\n".join(lines)


def multi_label_summary(report: DatasetReport) -> list[str]:
    """Multi-label: the labels per image, the images with none, and which labels go together (the CLI's
    report and the app's Data panel)."""
    sets = [r.label.split(";") if r.label else [] for r in report.images]
    several = sum(1 for s in sets if len(s) > 1)
    lines = [
        f"Multi-label: {counted(several, 'image')} with several labels, "
        f"{counted(len(report.unlabelled), 'image')} with none, "
        f"{sum(map(len, sets)) / max(len(sets), 1):.2f} labels per image on average",
    ]
    pairs = [(n, a, b) for a, row in report.cooccurrence.items() for b, n in row.items() if a < b and n]
    if pairs:
        lines.append(
            "  together most often: "
            + ", ".join(f"{a}+{b} {n}" for n, a, b in sorted(pairs, key=lambda p: (-p[0], p[1], p[2]))[:5])
        )
    for path in report.unlabelled[:5]:
        lines.append(f"  no label: {path}")
    if len(report.unlabelled) > 5:
        lines.append(f"  … and {len(report.unlabelled) - 5} more with no label (use --json for all)")
    return lines


def _listed(title: str, rows: list[tuple[str, str]]) -> list[str]:
    """A titled list of ``path: reason`` lines, the first ``_MAX_LISTED`` of them (none when empty)."""
    if not rows:
        return []
    lines = ["", title] + [f"  - {path}: {reason}" for path, reason in rows[:_MAX_LISTED]]
    if len(rows) > _MAX_LISTED:
        lines.append(f"  … and {len(rows) - _MAX_LISTED} more (use --json for all)")
    return lines
