"""A model card: what a run was trained on, how, how well, how each export checked, and its known limits.

Markdown, read only from the run folder (``run.json``, ``settings.json``, ``metrics.json``,
``evaluation.json``, ``manifest.csv``, ``history.json`` and, when an export set exists,
``export/summary.json``). It lands in two places: ``RUN/MODEL_CARD.md`` beside the run's own
SavedModel when the run ends, and ``RUN/export/README.md`` inside the export set's staging folder,
so it is swapped in with the set in one rename (a cancelled or failed set leaves the previous card).

A missing or unreadable file leaves its section saying so: a card never stops a run or an export.
Every piece of text that comes from the data (class names, folders, errors) is escaped, so a class
called ``a|b`` or ``*x*`` neither breaks a table nor turns bold.

Example:
    >>> print(model_card("runs/run-1"))  # doctest: +SKIP
    # Model card: run-1
    ...
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from tlstudio.core import atomic
from tlstudio.core.data.split import SPLITS, Manifest
from tlstudio.core.deploy.model_card_text import distillation_section, escape, exports_section, number
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import headline, wilson_interval
from tlstudio.core.results.run_history import describe_weights, read_json, shown_metric

RUN_CARD = "MODEL_CARD.md"  # RUN/MODEL_CARD.md: written when the run ends, beside its SavedModel
SET_CARD = "README.md"  # RUN/export/README.md: written with (and swapped in with) an export set
EXPORT_SUMMARY = "summary.json"  # export_set.SUMMARY, read here by name (this module is below it)

SMALL_TEST_WIDTH = 0.10  # a 95% interval for accuracy at least this wide: the test split is small
TOP_CONFUSIONS = 3
SHOWN_SKIPPED = 5


def model_card(run_dir: str | os.PathLike[str], exports: list[dict] | None = None) -> str:
    """The run's card as Markdown.

    Args:
        run_dir: the run folder.
        exports: the export set's entries (``DeployResult.to_dict`` each); None reads
            ``RUN/export/summary.json`` when there is one.

    Returns:
        Sections: Data, Backbone and recipe, Test results, Calibration, Exports, Known limits.
    """
    run = Path(run_dir)
    info = files.run_status(run)
    settings = read_json(run / files.SETTINGS)
    metrics = read_json(run / files.METRICS) or info.get("metrics") or {}
    metrics = {k: v for k, v in metrics.items() if _isnumber(v)} if isinstance(metrics, dict) else {}
    evaluation = read_json(run / files.EVALUATION)
    history = read_json(run / files.HISTORY)
    try:
        manifest = Manifest.load(run / files.MANIFEST)
    except (OSError, ValueError):
        manifest = None
    if exports is None:
        exports = _read_summary(run / files.EXPORT / EXPORT_SUMMARY)
    status = str(info.get("status", "unknown"))
    lines = [
        f"# Model card: {escape(run.name)}",
        "",
        f"Status **{escape(status)}**; {escape(headline(metrics))}.",
    ]
    if info.get("message"):
        lines += ["", f"> {escape(info['message'])}"]
    if info.get("started"):
        device = info.get("device") or "an unrecorded device"
        lines += ["", f"Trained {escape(info['started'])} on {escape(device)}."]
    lines += _data(info, settings, manifest)
    lines += _recipe(info, settings, metrics, history)
    lines += distillation_section(info)
    lines += _test(metrics, evaluation)
    lines += _calibration(metrics)
    lines += exports_section(exports)
    lines += _limits(info, metrics, evaluation, manifest)
    return "\n".join(lines) + "\n"


def write_run_card(run_dir: str | os.PathLike[str]) -> Path | None:
    """``RUN/MODEL_CARD.md``, atomically; None (and nothing changed) when it cannot be written or made
    — a full disk, or a record edited by hand into something unreadable, must not fail a run that has
    ended."""
    try:
        return atomic.write_text(Path(run_dir) / RUN_CARD, model_card(run_dir))
    except (OSError, ValueError, TypeError):
        return None


def refresh_cards(run_dir: str | os.PathLike[str]) -> None:
    """Write the run's card again, and its export set's when there is one, after ``run.json`` gained
    facts the first cards could not know (a student's teacher, recorded after its export)."""
    run = Path(run_dir)
    write_run_card(run)
    if (run / files.EXPORT / SET_CARD).is_file():
        with contextlib.suppress(OSError, ValueError, TypeError):
            atomic.write_text(run / files.EXPORT / SET_CARD, model_card(run))


def card_path(run_dir: str | os.PathLike[str]) -> Path | None:
    """The card to show for a run: the export set's (it has the export table), else the run's own."""
    run = Path(run_dir)
    for path in (run / files.EXPORT / SET_CARD, run / RUN_CARD):
        if path.is_file():
            return path
    return None


# -- sections -----------------------------------------------------------------------------------------


def _data(info: dict, settings: dict, manifest: Manifest | None) -> list[str]:
    out = ["", "## Data", ""]
    out.append(f"- Data folder: {escape(info.get('data_dir') or 'not recorded')}")
    fingerprint = info.get("manifest_fingerprint") or (manifest.fingerprint() if manifest else None)
    out.append(f"- Manifest fingerprint (SHA-256 of manifest.csv): {escape(fingerprint or 'not recorded')}")
    asked = [settings.get(k) for k in ("val_fraction", "test_fraction")]
    if all(isinstance(v, (int, float)) for v in asked):
        val, test = asked
        out.append(
            f"- Split asked: train {1 - val - test:.0%}, validation {val:.0%}, test {test:.0%}; "
            f"seed {escape(settings.get('seed', 'not recorded'))}"
        )
    if manifest is None:
        return [*out, "", "No readable manifest.csv: the classes and split are not known."]
    counts = manifest.counts()
    total = len(manifest.entries)
    shares = ", ".join(f"{_SPLIT_WORDS[s]} {len(manifest.subset(s)) / max(total, 1):.0%}" for s in SPLITS)
    out += [f"- Split made: {shares} of {total} images", ""]
    out += ["| class | train | validation | test | total |", "|---|---:|---:|---:|---:|"]
    for name in manifest.classes:
        n = [counts[s].get(name, 0) for s in SPLITS]
        out.append(f"| {escape(name)} | {n[0]} | {n[1]} | {n[2]} | {sum(n)} |")
    n = [len(manifest.subset(s)) for s in SPLITS]
    out.append(f"| **all {len(manifest.classes)} classes** | {n[0]} | {n[1]} | {n[2]} | {total} |")
    return out


_SPLIT_WORDS = {"train": "train", "val": "validation", "test": "test"}


def _recipe(info: dict, settings: dict, metrics: dict, history: dict) -> list[str]:
    out = ["", "## Backbone and recipe", ""]
    if not settings:
        return [*out, "No readable settings.json."]
    freeze = settings.get("freeze") if isinstance(settings.get("freeze"), dict) else {}
    size = info.get("image_size") or settings.get("image_size") or "the backbone's default"
    out += [
        f"- Backbone: {escape(settings.get('backbone', 'not recorded'))}",
        f"- Weights: {escape(describe_weights(settings))}",
        f"- Image size: {escape(size)} px",
        f"- Freeze plan: {escape(_freeze_words(freeze))}"
        + ("; BatchNorm trained" if freeze.get("train_batchnorm") else "; BatchNorm frozen"),
        f"- Optimizer {escape(settings.get('optimizer', '?'))}, learning rate "
        f"{escape(settings.get('learning_rate', '?'))}, batch size "
        f"{escape(info.get('batch_size') or settings.get('batch_size', '?'))}, "
        f"augmentation {escape(_augmentation_words(settings.get('augmentation')))}",
    ]
    if isinstance(metrics.get("best_epoch"), int):
        out.append(f"- Best epoch (counted from 1): {shown_metric('best_epoch', metrics['best_epoch'])}")
    alpha = metrics.get("wise_alpha")
    if isinstance(alpha, (int, float)):
        out.append(
            f"- WiSE-FT: α = {alpha:g} (0: the linear probe's weights, 1: the fine-tuned ones; chosen on "
            "validation)"
        )
    elif settings.get("interpolate") is False:
        out.append("- WiSE-FT: off")
    phases = _phases(history)
    if phases:
        out += ["", "| phase | epochs | learning rate (first → last) |", "|---|---:|---|"]
        for name, epochs, rate in phases:
            out.append(f"| {escape(name)} | {epochs} | {escape(rate)} |")
    return out


def _freeze_words(freeze: dict) -> str:
    preset, value = freeze.get("preset", "all"), freeze.get("value", 0)
    value = f"{value:g}" if isinstance(value, (int, float)) else value
    words = {
        "all": "backbone frozen (feature extraction)",
        "none": "whole backbone trainable",
        "first": f"first {value}% of the backbone frozen",
        "top": f"top {value} block(s) trainable",
        "custom": f"{len(freeze.get('frozen_layers') or [])} layer(s) frozen by hand",
    }
    return words.get(preset, str(preset))


def _augmentation_words(augmentation: object) -> str:
    if not isinstance(augmentation, dict):
        return "not recorded"
    on = [f"{k} {v}" if not isinstance(v, bool) else k for k, v in augmentation.items() if v]
    return ", ".join(on) if on else "off"


def _phases(history: dict) -> list[tuple[str, int, str]]:
    """(phase, epochs run, its learning rate in words) in the order the phases ran."""
    runs: list[list] = []  # [name, epochs, first rate, last rate, probe L2]
    for epoch in history.get("epochs") or []:
        if not isinstance(epoch, dict):
            continue
        name = str(epoch.get("phase") or "training")
        rate = epoch.get("learning_rate")
        rate = float(rate) if isinstance(rate, (int, float)) else None
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
            runs[-1][3] = rate if rate is not None else runs[-1][3]
        else:
            runs.append([name, 1, rate, rate, epoch.get("probe_l2")])
    out = []
    for name, epochs, first, last, l2 in runs:
        if isinstance(l2, (int, float)):  # the linear probe: fitted on cached features, no learning rate
            words = f"none: a linear probe fitted directly (L2 {l2:g})"
        elif first is None or last is None:
            words = "—"
        else:
            words = f"{first:.3g}" if first == last else f"{first:.3g} → {last:.3g}"
        out.append((name, epochs, words))
    return out


def _multilabel_test(metrics: dict) -> list[str]:
    """A multi-label run's test figures, at the thresholds tuned on validation."""
    from tlstudio.core.results.metrics import headline

    out = [f"- {headline(metrics)[0].upper()}{headline(metrics)[1:]}"]
    for key, words in (
        ("test_micro_map", "Micro mAP"),
        ("test_macro_f1", "Macro F1 at the thresholds"),
        ("test_micro_f1", "Micro F1 at the thresholds"),
        ("test_subset_accuracy", "Subset accuracy (every label right)"),
        ("test_hamming_loss", "Hamming loss (label decisions wrong)"),
    ):
        if isinstance(metrics.get(key), (int, float)):
            out.append(f"- {words}: {metrics[key]:.3f}")
    return out


def _test(metrics: dict, evaluation: dict) -> list[str]:
    out = ["", "## Test results", ""]
    if "test_subset_accuracy" in metrics:  # multi-label
        return [*out, *_multilabel_test(metrics)]
    if "test_accuracy" not in metrics:
        return [*out, "No test split: the run was not measured on held-out images."]
    n = int(metrics.get("test_images") or evaluation.get("num_images") or 0)
    accuracy = float(metrics["test_accuracy"])
    low, high = metrics.get("test_accuracy_low"), metrics.get("test_accuracy_high")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        low, high = wilson_interval(round(accuracy * n), n)
    out.append(f"- Accuracy: {accuracy:.3f} (95% interval {low:.3f}–{high:.3f}, {n} images)")
    if isinstance(metrics.get("test_macro_f1"), (int, float)):
        out.append(f"- Macro F1: {metrics['test_macro_f1']:.3f}")
    for key, words in (("test_loss", "Log loss"), ("test_auc", "Macro ROC AUC (one vs rest)")):
        if isinstance(metrics.get(key), (int, float)):
            out.append(f"- {words}: {metrics[key]:.3f}")
    per_class = evaluation.get("per_class")
    if not isinstance(per_class, dict) or not per_class:
        return [*out, "", "No readable evaluation.json: no per-class results."]
    predicted = _predicted_counts(evaluation)
    out += [
        "",
        "Intervals are 95% Wilson intervals (recall over the class's test images, precision over the "
        "images predicted as the class).",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---:|---:|",
    ]
    for name, row in per_class.items():
        if not isinstance(row, dict) or not all(_isnumber(row.get(k, 0)) for k in _PER_CLASS):
            continue
        support = int(row.get("support", 0))
        precision, recall = float(row.get("precision", 0)), float(row.get("recall", 0))
        shown = predicted.get(name)
        p = _with_interval(precision, shown) if shown is not None else f"{precision:.3f}"
        out.append(
            f"| {escape(name)} | {p} | {_with_interval(recall, support)} | {float(row.get('f1', 0)):.3f} "
            f"| {support} |"
        )
    return out


_PER_CLASS = ("precision", "recall", "f1", "support")


def _isnumber(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _with_interval(share: float, n: int) -> str:
    if n <= 0:
        return f"{share:.3f}"
    low, high = wilson_interval(round(share * n), n)
    return f"{share:.3f} ({low:.2f}–{high:.2f})"


def _predicted_counts(evaluation: dict) -> dict[str, int]:
    labels, cm = evaluation.get("labels"), evaluation.get("confusion_matrix")
    try:
        return {name: int(sum(row[i] for row in cm)) for i, name in enumerate(labels)}
    except (TypeError, IndexError, ValueError):
        return {}


def _calibration(metrics: dict) -> list[str]:
    out = ["", "## Calibration", ""]
    test_ece = metrics.get("test_ece")
    test = f"; test ECE {test_ece:.3f}" if isinstance(test_ece, (int, float)) else ""
    if isinstance(metrics.get("temperature"), (int, float)):
        before = metrics.get("val_ece_before_calibration")
        after = metrics.get("val_ece_calibrated")
        out.append(
            f"Temperature scaling fitted on the validation split (T = {metrics['temperature']:.3f}), baked "
            "into the exported model: expected calibration error (ECE) on validation "
            f"{number(before)} before, {number(after)} after{test}."
        )
    elif isinstance(metrics.get("val_macro_ece_calibrated"), (int, float)):  # multi-label
        before = metrics.get("val_macro_ece_before_calibration")
        after = metrics["val_macro_ece_calibrated"]
        out.append(
            "Platt scaling per label fitted on the validation split, baked into the exported model "
            f"(thresholds tuned after it): macro ECE on validation {number(before)} before, "
            f"{number(after)} after."
        )
    else:
        out.append(f"Not calibrated (no temperature scaling){test}.")
    return out


def _limits(info: dict, metrics: dict, evaluation: dict, manifest: Manifest | None) -> list[str]:
    out = ["", "## Known limits", ""]
    found = []
    n = metrics.get("test_images")
    low, high = metrics.get("test_accuracy_low"), metrics.get("test_accuracy_high")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high - low >= SMALL_TEST_WIDTH:
        found.append(
            f"- Small test split: {n} images; the 95% interval for accuracy is {(high - low) * 100:.0f} "
            "points wide. More test images would narrow it."
        )
    for true, predicted, count, support in _confusions(evaluation):
        found.append(
            f"- Confused: {count} of {support} test images of {escape(true)} were predicted as "
            f"{escape(predicted)}."
        )
    if manifest is not None:
        for split, words in (("val", "validation"), ("test", "test")):
            missing = manifest.missing_classes(split) if manifest.subset(split) else []
            if missing:
                found.append(f"- No {words} image of: {', '.join(escape(c) for c in missing)}.")
            elif not manifest.subset(split):
                found.append(f"- No {words} split at all.")
    skipped = [s for key in ("skipped_at_split", "skipped_while_training") for s in info.get(key) or []]
    if skipped:
        shown = "; ".join(
            f"{escape(s.get('path', '?'))} ({escape(s.get('reason', ''))})"
            for s in skipped[:SHOWN_SKIPPED]
            if isinstance(s, dict)
        )
        more = f" and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
        found.append(f"- {len(skipped)} file(s) skipped (unreadable or unusable): {shown}{more}.")
    return out + (found or ["None found in the run's records."])


def _confusions(evaluation: dict) -> list[tuple[str, str, int, int]]:
    """The largest off-diagonal cells of the test confusion matrix: (true, predicted, count, support)."""
    labels, cm = evaluation.get("labels"), evaluation.get("confusion_matrix")
    try:
        cells = [
            (labels[i], labels[j], int(cm[i][j]), int(sum(cm[i])))
            for i in range(len(labels))
            for j in range(len(labels))
            if i != j and cm[i][j]
        ]
    except (TypeError, IndexError, ValueError):
        return []
    return sorted(cells, key=lambda c: -c[2])[:TOP_CONFUSIONS]


def _read_summary(path: Path) -> list[dict] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else None
