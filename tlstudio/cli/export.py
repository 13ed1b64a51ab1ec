"""`tlstudio export`: a run's model as SavedModel (TF Serving), LiteRT, ONNX, OpenVINO or TF.js, verified in
each runtime."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import fail, quiet_tensorflow


def add_parser(sub) -> None:
    """Register the command."""
    from tlstudio.core.deploy.format_list import UNAVAILABLE
    from tlstudio.core.deploy.formats import (  # no TF
        FORMATS,
        MAX_ACCURACY_DROP,
        MIN_AGREEMENT,
        QUANTIZE_MODES,
    )

    p = sub.add_parser(
        "export",
        help="convert a run's model to SavedModel / TFLite / ONNX / OpenVINO / TF.js, verified in each",
        description="Convert RUN_DIR's model and check it in a fresh process with the runtime a user "
        "would use (LiteRT interpreter, onnxruntime, OpenVINO, TensorFlow.js in Node, plain TensorFlow) "
        "on the run's test images: top-1 agreement with the trained model, accuracy overall and per "
        "class, latency, throughput, size. An artefact that does not agree is not written. Lands in "
        "RUN_DIR/export/<format>[-<mode>]/.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path)
    p.add_argument(
        "--format",
        default="all",
        choices=[*FORMATS, *(f for f in UNAVAILABLE if f not in FORMATS), "all"],
        help="(all: every format side by side; coreml, and tfjs without Node.js: refused with the reason)",
    )
    p.add_argument(
        "--quantize", default="float32", choices=QUANTIZE_MODES, help="tflite; openvino: int8 (float32)"
    )
    p.add_argument("--uint8-io", action="store_true", help="int8 tflite with uint8 input and output")
    p.add_argument("--out", type=Path, metavar="DIR", help="the artefact's folder (one format only)")
    p.add_argument("--data", type=Path, metavar="DIR", help="the data folder, if it moved since training")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=MIN_AGREEMENT,
        metavar="F",
        help=f"float formats: least top-1 agreement with the trained model ({MIN_AGREEMENT})",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=MAX_ACCURACY_DROP,
        metavar="F",
        help=f"int8 / dynamic tflite, openvino int8: largest accuracy loss "
        f"({MAX_ACCURACY_DROP}, i.e. one point)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--force", action="store_true", help="export a run that did not learn all the same")


def refusal(args: argparse.Namespace) -> str | None:
    """Why this export must not start (said before TensorFlow loads), or None."""
    from tlstudio.core.deploy.format_list import unavailable
    from tlstudio.core.deploy.formats import DESCRIPTION as EXPORT_MARKER
    from tlstudio.core.results import run_folder as files

    if reason := unavailable(args.format):
        return reason

    status = files.run_status(args.run_dir).get("status")
    if status is None:
        return f"{args.run_dir} is not a run folder (no readable {files.RUN_JSON})"
    if status == "running":
        return f"{args.run_dir} is still training: export it once the run has ended"
    if status == "failed_to_learn" and not args.force:
        return (
            f"{args.run_dir} did not learn (see its {files.RUN_JSON}): its model is no better than chance. "
            "Pass --force to export it anyway"
        )
    out = args.out
    if out is not None and out.exists():
        earlier = out.is_dir() and (out / EXPORT_MARKER).is_file()
        if not earlier and (not out.is_dir() or any(out.iterdir())):
            return (
                f"{out} exists and is not an earlier export: choose a new or empty folder (nothing written)"
            )
    return None


def run(args: argparse.Namespace) -> int:
    """Export one format or all of them; exit 1 when any failed."""
    from tlstudio.core.deploy.format_list import unavailable

    if reason := unavailable(args.format):  # before any work: nothing of the run is read
        return fail("export", reason, 2)
    if not args.run_dir.is_dir():
        return fail("export", f"{args.run_dir} is not a run folder", 2)
    if args.format == "all" and (args.out or args.quantize != "float32" or args.uint8_io):
        return fail("export", "--out, --quantize and --uint8-io need one --format", 2)
    other_modes = {"openvino": ("float32", "int8")}.get(args.format, ("float32",))
    if args.format != "tflite" and (args.quantize not in other_modes or args.uint8_io):
        return fail("export", "--quantize and --uint8-io are for --format tflite (openvino: int8)", 2)
    if args.uint8_io and args.quantize != "int8":
        return fail("export", "--uint8-io needs --quantize int8", 2)
    problem = refusal(args)
    if problem:
        return fail("export", problem, 2)
    quiet_tensorflow()
    from tlstudio.core.deploy.export_set import export_all
    from tlstudio.core.deploy.formats import DeployError, DeployResult, export_format
    from tlstudio.core.deploy.model_card import card_path

    options = {
        "data_dir": args.data,
        "min_agreement": args.min_agreement,
        "max_accuracy_drop": args.max_accuracy_drop,
    }
    try:
        if args.format == "all":
            results = export_all(args.run_dir, **options)
        else:
            results = [
                export_format(
                    args.run_dir,
                    args.format,
                    quantize=args.quantize,
                    out=args.out,
                    uint8_io=args.uint8_io,
                    **options,
                )
            ]
    except DeployError as err:
        if args.format == "all":
            return fail("export", str(err), 1)
        results = [DeployResult(args.format, args.quantize, None, None, error=str(err))]
    except OSError as err:  # one format: nothing was put in place, the earlier artefact stays
        if args.format == "all":
            raise
        error = f"could not be written: {err}; nothing was put in place"
        results = [DeployResult(args.format, args.quantize, None, None, error=error)]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print_table(results)
        if args.format == "all":  # the set landed with its model card
            print(f"Model card: {card_path(args.run_dir)}")
    failed = [r for r in results if r.error]
    if failed:
        return fail("export", failure_line(results), 1)
    return 0


def failure_line(results) -> str:
    """One line: how many artefacts failed, the first reason, and which earlier ones stay."""
    failed = [r for r in results if r.error]
    reasons = list(dict.fromkeys(_reason(r) for r in failed))
    first = reasons[0] if len(failed) > 1 and len(reasons) == 1 else failed[0].error.split(" — ")[0]
    line = f"{len(failed)} of {len(results)} not exported: {first}"
    if len(reasons) > 1:
        line += f" (and {len(reasons) - 1} other reason{'s' if len(reasons) > 2 else ''}: see above)"
    kept: dict[str, list[str]] = {}  # by the time they were exported
    for r in failed:
        if r.previous:
            kept.setdefault(str(r.exported_at), []).append(r.name)
    if kept:
        names = "; ".join(f"{', '.join(names)} (exported {when})" for when, names in kept.items())
        line += f"; the previous verified artefacts stay in place: {names}"
    return line


def _reason(r) -> str:
    """A result's error without its name in front and without what stays (said apart)."""
    text = r.error.split(" — the previous verified")[0]
    for prefix in (f"{r.name}: ", f"{r.name} "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def print_table(results) -> None:
    """The formats side by side."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Exports, each checked in its own runtime on the run's test images")
    for column in (
        "format",
        "agreement",
        "accuracy (change)",
        "max Δp",
        "ms/image p50 (p95)",
        "img/s @32",
        "size",
        "folder",
    ):
        table.add_column(column, justify="left" if column in ("format", "folder") else "right")
    for r in results:
        v = r.verification
        if r.skipped:
            table.add_row(
                escape(r.name), "—", "—", "—", "—", "—", "—", f"[yellow]skipped: {escape(r.skipped)}[/yellow]"
            )
            continue
        if v is None and r.previous:  # failed now: the earlier verified artefact stays, said so
            v = _previous_verification(r.previous)
            why = escape(_reason(r))
            when = escape(str(r.exported_at))
            where = f"{escape(str(r.folder))} [yellow](previous, {when}; now: {why})[/yellow]"
        elif v is None:  # the error may hold brackets (pip install 'tlstudio[export]'): escaped
            table.add_row(
                escape(r.name), "—", "—", "—", "—", "—", "—", f"[red]not written: {escape(r.error)}[/red]"
            )
            continue
        else:
            where = escape(str(r.folder)) + (" [green](new)[/green]" if r.exported_at else "")
        table.add_row(
            escape(r.name),
            f"{v.agreement:.1%}",
            f"{v.accuracy:.3f} ({v.accuracy_change:+.3f})",
            f"{v.max_probability_difference:.4f}",
            f"{v.latency_ms_median:.2f} ({v.latency_ms_p95:.2f})",
            f"{v.throughput_images_per_second:,.0f}",
            _size(v.size_bytes),
            where,
        )
    Console(file=sys.stdout, width=200).print(table)
    for r in results:
        for warning in r.warnings:
            print(f"note ({r.name}): {warning}")


def _previous_verification(previous: dict):
    from types import SimpleNamespace

    keys = (
        "agreement",
        "accuracy",
        "accuracy_change",
        "max_probability_difference",
        "latency_ms_median",
        "latency_ms_p95",
        "throughput_images_per_second",
        "size_bytes",
    )
    found = previous.get("verification") or {}
    return SimpleNamespace(**{k: found.get(k, 0) or 0 for k in keys})


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"
