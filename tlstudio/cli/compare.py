"""`tlstudio compare`: several candidates on one split."""

from __future__ import annotations

import argparse
import json
import sys

from tlstudio.cli.common import fail, quiet_tensorflow
from tlstudio.cli.options import settings_from_args


def run_compare(args: argparse.Namespace) -> int:
    if not args.data_dir.is_dir():
        return fail("compare", f"{args.data_dir} is not a folder", 2)
    quiet_tensorflow()
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import Manifest, SplitConfig, make_split
    from tlstudio.core.training.comparison import candidates_for, compare, format_table
    from tlstudio.progress import ProgressPrinter

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    plans = [p.strip() for p in args.plans.split(",") if p.strip()] if args.plans else None
    try:
        candidates = candidates_for(settings_from_args(args, backbones[0]), backbones, plans, args.baseline)
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
