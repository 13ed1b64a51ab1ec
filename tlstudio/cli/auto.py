"""`tlstudio auto`: one command from a folder to a verified model, nothing else to choose."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import fail, folder_only_problem, quiet_tensorflow


def add_parser(sub) -> None:
    """Register ``auto``."""
    p = sub.add_parser(
        "auto",
        help="one click: check the data, rank the backbones at hand, train the best, export every format",
        description="Runs the dataset doctor (stops on a blocking problem and says what to fix), ranks the "
        "backbones this machine has without network (EfficientNet-Lite0 of the [offline] extra, Keras "
        "Applications whose ImageNet weights are cached; or --candidates), trains the best with the default "
        "recipe (image size from the backbone), and exports every format that passes its check in its own "
        "runtime. It reports what each step gained on validation, with 95%% intervals, and the time; "
        "RUN/auto.json keeps it.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    p.add_argument("--out", required=True, type=Path, metavar="RUN", help="the run folder to make")
    p.add_argument("--candidates", metavar="A,B,...", help="backbones to choose from (names or model files)")
    p.add_argument(
        "--no-export", action="store_true", help="train only (export later with `tlstudio export`)"
    )
    p.add_argument("--json", action="store_true", help="print auto.json's content at the end")


def run(args: argparse.Namespace) -> int:
    if (why := folder_only_problem(args.data_dir, "auto")) is not None:
        return fail("auto", why, 2)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        return fail("auto", f"{args.out} already holds files: choose a new --out", 2)
    names = None
    if args.candidates is not None:
        names = [c.strip() for c in args.candidates.split(",") if c.strip()]
        if not names or len(set(names)) != len(names):
            return fail("auto", "--candidates must name each backbone once", 2)
    quiet_tensorflow()
    from tlstudio.core.training.auto import AutoRefused, auto
    from tlstudio.progress import ProgressPrinter

    try:
        result = auto(
            args.data_dir, args.out, candidates=names, on_event=ProgressPrinter(), export=not args.no_export
        )
    except AutoRefused as err:
        return fail("auto", str(err), 2)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print_summary(result)
    # a format that fails its check is left out and said (an int8 TFLite that loses accuracy, say):
    # that is auto's job, not a failure; a run that did not finish with a model is
    return 0 if result.run.status in ("completed", "stopped") else 1


def print_summary(result) -> None:
    """What was chosen, what each step gained, what was exported, and the time."""
    out = sys.stdout
    if result.ranking:
        ranked = ", ".join(
            f"{Path(str(r['backbone'])).name} {r['score']:.3f}"
            if "score" in r
            else f"{r['backbone']} (failed)"
            for r in result.ranking
        )
        print(f"Ranked on the data (frozen-feature accuracy): {ranked}", file=out)
    print(f"Chose {result.chosen}; the run {result.run.status} in {result.run.run_dir}", file=out)
    previous = None
    for step in result.steps:
        low, high = step.interval
        gain = f" ({step.val_accuracy - previous:+.3f})" if previous is not None else ""
        print(
            f"  after {step.step}: validation accuracy {step.val_accuracy:.3f} [{low:.3f}, {high:.3f}]{gain}",
            file=out,
        )
        previous = step.val_accuracy
    test = result.run.metrics.get("test_accuracy")
    if test is not None:
        print(f"  test accuracy {test:.3f}", file=out)
    for e in result.exports:
        words = f"not exported: {e.error}" if e.error else "verified"
        print(f"  export {e.name}: {words}", file=out)
    print(f"Done in {result.seconds:.0f} s.", file=out)
