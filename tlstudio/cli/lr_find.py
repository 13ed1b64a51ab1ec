"""`tlstudio lr-find`: the learning-rate finder for the fine-tune phase, as a curve and a suggestion."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import data_problem, fail, quiet_tensorflow
from tlstudio.cli.options import DATA_HELP, add_split_options, add_training_options, settings_from_args


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser(
        "lr-find",
        help="sweep learning rates for the fine-tune phase and suggest one",
        description="Fit the linear probe, unfreeze the top blocks as phase 2 does, then raise the "
        "learning rate exponentially over N steps and record the training loss (fastai's lr_find). "
        "Prints the suggested rate (fastai's valley of the smoothed loss, at most a tenth of the "
        "rate with the lowest loss); --plot writes the curve. Nothing is trained for keeps. On a "
        "multi-label labels CSV the loss is the sigmoid head's binary cross-entropy.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", type=Path, help=DATA_HELP)
    p.add_argument("--backbone", required=True, metavar="NAME_OR_PATH")
    p.add_argument("--steps", type=int, default=100, metavar="N", help="rates tried (100)")
    p.add_argument("--start", type=float, default=1e-7, metavar="X", help="lowest rate (1e-7)")
    p.add_argument("--end", type=float, default=1.0, metavar="X", help="highest rate (1)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write the curve")
    p.add_argument("--json", action="store_true", help="print rates, losses and the suggestion as JSON")
    add_training_options(p)
    add_split_options(p)


def run(args: argparse.Namespace) -> int:
    """Run the finder and report."""
    if (why := data_problem(args.data_dir)) is not None:
        return fail("lr-find", why, 2)
    try:
        settings = settings_from_args(args)
    except ValueError as err:
        return fail("lr-find", str(err), 2)
    quiet_tensorflow()
    from tlstudio.core.backbone.registry import BackboneError
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.training.lr_find import find_learning_rate, plot

    try:
        manifest = Manifest.load(args.manifest) if args.manifest else None
        result = find_learning_rate(
            settings, args.data_dir, manifest=manifest, steps=args.steps, start=args.start, end=args.end
        )
    except (ValueError, BackboneError) as err:
        return fail("lr-find", str(err), 2)
    if args.plot:
        plot(result, args.plot)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if result.suggestion is None:
        print("Too few steps before the loss diverged: try --steps 200 or a lower --end", file=sys.stderr)
        return 1
    print(
        f"Suggested fine-tune rate: {result.suggestion:.2e} (valley at {result.valley:.2e}, "
        f"lowest loss at {result.minimum:.2e}); the recipe's default is "
        f"{settings.learning_rate * settings.fine_tune_lr_factor:.0e}."
    )
    print(
        f"Use it: tlstudio train ... --learning-rate {result.suggestion / settings.fine_tune_lr_factor:.2e} "
        f"(phase 2 runs at {settings.fine_tune_lr_factor:g}× the head's rate)"
    )
    if args.plot:
        print(f"Curve: {args.plot}")
    return 0
