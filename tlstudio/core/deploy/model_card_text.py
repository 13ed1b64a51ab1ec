"""The model card's words: Markdown escaping of text from the data, figures, and the export table."""

from __future__ import annotations

import re

from tlstudio.core.results import run_folder as files

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&!{}])")


def escape(text: object) -> str:
    """``text`` as literal Markdown: punctuation Markdown would act on backslash-escaped (``|`` too,
    which ends a table cell), line breaks as spaces.

    Example:
        >>> escape("a|b *c*")
        'a\\\\|b \\\\*c\\\\*'
    """
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def number(value: object) -> str:
    """A figure to three decimals ("—" when there is none)."""
    return f"{value:.3f}" if isinstance(value, (int, float)) else "—"


def exports_section(exports: list[dict] | None) -> list[str]:
    """The export table's lines: each artefact's status and its check in its own runtime."""
    out = ["", "## Exports", ""]
    if not exports:
        return [
            *out,
            "No export set yet (`tlstudio export RUN --format all`). The run's own SavedModel is in "
            f"{escape(files.SAVED_MODEL)}/, checked to reload when it was written.",
        ]
    out += [
        "Each artefact was run by its own runtime in a fresh process on the run's test images and compared "
        "with the trained model.",
        "",
        "Each artefact's folder holds a sample client, `predict_<format>.py IMAGE`, that classifies an "
        "image file with that runtime, Pillow and numpy alone (TF.js: an HTML page, `index.html`); the "
        "`.tflite` files carry their labels "
        "inside (TFLite metadata), checked against the run's classes.",
        "",
        "| format | status | agreement | Δaccuracy | ms/image (p50) | size |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for entry in exports:
        status = str(entry.get("status") or "failed")
        v = entry.get("verification")
        if not isinstance(v, dict) and isinstance(entry.get("previous"), dict):
            v = entry["previous"].get("verification")
        name = escape(entry.get("name") or entry.get("format") or "?")
        if not isinstance(v, dict):
            error = str(entry.get("error") or entry.get("skipped") or "").split(" — ")[0]
            shown = f"{escape(status)}: {escape(error)}" if error else escape(status)
            out.append(f"| {name} | {shown} | — | — | — | — |")
            continue
        out.append(
            f"| {name} | {escape(status)} | {_share(v.get('agreement'))} "
            f"| {_signed(v.get('accuracy_change'))} | {number(v.get('latency_ms_median'))} "
            f"| {_size(v.get('size_bytes'))} |"
        )
    return out


def _share(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "—"


def _signed(value: object) -> str:
    return f"{value:+.3f}" if isinstance(value, (int, float)) else "—"


def _size(n: object) -> str:
    if not isinstance(n, (int, float)):
        return "—"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def distillation_section(info: dict) -> list[str]:
    """The Distillation section of a student's card (``run.json``'s ``distilled_from``,
    ``distillation`` and ``teacher_comparison``, which ``tlstudio distill`` records); none for other runs."""
    if not info.get("distilled_from"):
        return []
    how = info.get("distillation") or {}
    out = ["", "## Distillation", "", f"Distilled from the run `{escape(info['distilled_from'])}`: "]
    out[-1] += (
        f"student {escape(how.get('student', '?'))} ({escape(how.get('student_weights', '?'))} weights), "
        f"temperature {escape(how.get('temperature', '?'))}, "
        f"soft-label weight {escape(how.get('soft_weight', '?'))}, "
        + (
            f"plus the unlabelled images in `{escape(how['unlabelled'])}`."
            if how.get("unlabelled")
            else "labelled images only."
        )
    )
    c = info.get("teacher_comparison") or {}
    if "agreement" in c:
        low, high = c["agreement_interval"]
        out += [
            "",
            f"Top-1 agreement with the teacher on {c.get('test_images', '?')} test images: "
            f"{number(c['agreement'])} ({number(low)}–{number(high)}).",
        ]
    ratios = [
        f"{what} × {number(c[key])}"
        for what, key in (("latency", "latency_ratio"), ("size", "size_ratio"))
        if c.get(key)
    ]
    if ratios:
        out.append("Student / teacher: " + ", ".join(ratios) + ".")
    return out
