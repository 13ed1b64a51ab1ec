"""Command-line front door. Heavy modules (TensorFlow, Pillow, Qt) are imported inside commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tlstudio import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tlstudio",
        description="TL Studio: transfer learning on images with Keras. "
        "Without a command it opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"tlstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    inspect = sub.add_parser(
        "inspect",
        help="check a data folder (one sub-folder per class) and report its health",
        description="Scan DATA_DIR, report usable images per class, skipped files with reasons, "
        "duplicates, imbalance and image sizes. Exit code 0 when the folder is usable.",
    )
    inspect.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    _add_scan_options(inspect)
    inspect.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="also write the stratified train/val/test split manifest (CSV) to FILE",
    )
    _add_split_options(inspect)
    inspect.set_defaults(handler=_cmd_inspect)

    demo = sub.add_parser("demo", help="run the dataset doctor on the bundled sample dataset")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        metavar="DIR",
        help="where to write the split manifest (default: runs/demo)",
    )
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _add_scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--deep",
        action="store_true",
        help="decode every image fully (slower) instead of header and structure checks",
    )


def _add_split_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val", type=float, default=0.15, metavar="F", help="validation fraction (0.15)")
    p.add_argument("--test", type=float, default=0.15, metavar="F", help="test fraction (0.15)")
    p.add_argument("--seed", type=int, default=42, help="split seed (42)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("tlstudio: interrupted", file=sys.stderr)
        return 130


def _fail(command: str, message: str, code: int = 1) -> int:
    print(f"tlstudio {command}: {message}", file=sys.stderr)
    return code


def _cmd_inspect(args: argparse.Namespace) -> int:
    from tlstudio.core.health import inspect_folder
    from tlstudio.core.split import SplitConfig, make_split

    if not args.data_dir.is_dir():
        return _fail("inspect", f"{args.data_dir} is not a folder", 2)
    try:
        config = SplitConfig(args.val, args.test, args.seed)
    except ValueError as err:
        return _fail("inspect", str(err), 2)
    progress = None if args.json or not sys.stderr.isatty() else _progress_printer("Scanning")
    report = inspect_folder(args.data_dir, deep=args.deep, on_progress=progress)
    manifest = None
    if args.manifest and report.usable:
        manifest = make_split(report.images, config)
        manifest.save(args.manifest)
    if args.json:
        data = report.to_dict()
        if manifest is not None:
            data["manifest"] = {
                "path": str(args.manifest),
                "fingerprint": manifest.fingerprint(),
                "counts": manifest.counts(),
            }
        print(
            json.dumps(data, indent=2, ensure_ascii=False, default=str)
            .encode("utf-8", "backslashreplace")
            .decode("utf-8")
        )
    else:
        from tlstudio.report_text import format_report

        print(format_report(report, manifest, args.manifest))
    if not report.usable:
        return _fail("inspect", f"not usable: {report.problem}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tlstudio.samples import sample_dataset

    data = sample_dataset()
    print(f"TL Studio demo on the bundled sample dataset: {data}\n")
    manifest_path = args.out / "manifest.csv"
    return _cmd_inspect(
        argparse.Namespace(
            data_dir=data, json=False, deep=False, manifest=manifest_path, val=0.15, test=0.15, seed=42
        )
    )


def _progress_printer(label: str):
    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total} files", end=end, file=sys.stderr, flush=True)

    return show
