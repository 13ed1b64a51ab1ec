"""`tlstudio compare`: several candidates on one split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import fail, folder_only_problem, quiet_tensorflow
from tlstudio.cli.options import add_split_options, add_training_options, settings_from_args


def add_parser(sub) -> None:
    """Register ``compare``."""
    p = sub.add_parser(
        "compare",
        help="train several backbones / freeze plans (and a from-scratch baseline) on one split",
        description="Train every backbone (× every freeze plan) on the same split with the same settings, "
        "optionally the first one from random weights too (--baseline), and print a table: test "
        "accuracy, macro F1, training time, model size and latency per image on this machine. Writes "
        "OUT/comparison.json, .csv and .png (validation curves overlaid) and one run folder per candidate.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    p.add_argument(
        "--backbones", required=True, metavar="A,B,...", help="names or model files, comma-separated"
    )
    p.add_argument("--plans", metavar="P,Q,...", help="freeze plans to try for each backbone, e.g. all,none")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="add the first candidate trained from random weights, every layer trainable, same budget",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the runs and tables")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    add_training_options(p)
    add_split_options(p)


def run(args: argparse.Namespace) -> int:
    if (why := folder_only_problem(args.data_dir, "compare")) is not None:
        return fail("compare", why, 2)
    quiet_tensorflow()
    from tlstudio.cli.train import settings_problem
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import Manifest, SplitConfig, make_split
    from tlstudio.core.training.comparison import candidates_for, compare, format_table
    from tlstudio.progress import ProgressPrinter

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    plans = [p.strip() for p in args.plans.split(",") if p.strip()] if args.plans else None
    try:
        candidates = candidates_for(settings_from_args(args, backbones[0]), backbones, plans, args.baseline)
        for c in candidates:  # every candidate before any of them trains (hours may pass before the last)
            if (why := settings_problem(c.settings)) is not None:
                return fail("compare", f"{c.name}: {why}", 2)
        if args.manifest:
            manifest = Manifest.load(args.manifest)
        else:
            report = inspect_folder(args.data_dir)
            if not report.usable:
                return fail("compare", f"not usable: {report.problem}")
            manifest = make_split(report.images, SplitConfig(args.val, args.test, args.seed))
    except (ValueError, IndexError) as err:
        return fail("compare", str(err) or "give at least one backbone", 2)
    if args.out.is_file() or (args.out.is_dir() and any(args.out.iterdir()) and not args.overwrite):
        return fail("compare", f"{args.out} is not empty: use --overwrite to replace it, or another --out", 2)
    if args.overwrite and args.out.is_dir():
        import shutil

        shutil.rmtree(args.out)
    for c in candidates:
        print(f"· {c.name}", file=sys.stderr)
    rows = compare(candidates, args.data_dir, manifest, args.out, on_event=ProgressPrinter())
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
        print(f"\nRuns, comparison.csv and comparison.png (curves overlaid) in {args.out}")
    return 0 if all(r.status == "completed" for r in rows) else 1
