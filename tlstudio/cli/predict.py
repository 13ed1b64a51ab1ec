"""`tlstudio predict`: classify image files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tlstudio.cli.common import fail, quiet_tensorflow


def add_parser(sub) -> None:
    """Register ``predict``."""
    p = sub.add_parser("predict", help="classify image files with an exported model")
    p.add_argument("model", metavar="MODEL", type=Path, help="a SavedModel folder or a run folder")
    p.add_argument("images", metavar="IMAGE", nargs="+", type=Path)
    from tlstudio.core.settings import PREDICT_TOP

    p.add_argument(
        "--top", type=int, default=PREDICT_TOP, metavar="K", help=f"classes shown per image ({PREDICT_TOP})"
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")


def run(args: argparse.Namespace) -> int:
    if not args.model.exists():  # said before TensorFlow loads (seconds)
        return fail("predict", f"{args.model} does not exist", 2)
    if args.top < 1:
        return fail("predict", "--top must be at least 1", 2)
    missing = [str(p) for p in args.images if not p.exists()]
    if len(missing) == len(args.images):  # nothing to classify: said before the model loads (seconds)
        return fail("predict", f"no such image: {', '.join(missing)}", 2)
    quiet_tensorflow()
    from tlstudio.core.results.evaluation import load_exported, predict_files

    try:
        model = load_exported(args.model)
    except (FileNotFoundError, ValueError) as err:
        return fail("predict", str(err))
    results = predict_files(model, args.images, top=args.top)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for item in results:
            if "error" in item:
                print(f"{item['path']}: cannot read: {item['error']}")
            elif "labels" in item:  # multi-label: the labels at or above their thresholds
                given = ", ".join(f"{x['label']} {x['probability']:.3f}" for x in item["labels"])
                print(f"{item['path']}: {given or '(no label above its threshold)'}")
            else:
                tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in item["top"])
                print(f"{item['path']}: {tops}")
    return 1 if any("error" in item for item in results) else 0
