"""`tlstudio distill`: train a small student on a run's soft labels, then check it against its teacher."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import fail, quiet_tensorflow
from tlstudio.core.settings import (
    DISTILL_BATCH_SIZE,
    DISTILL_EPOCHS,
    DISTILL_LEARNING_RATE,
    DISTILL_SOFT_WEIGHT,
    DISTILL_STUDENTS,
    DISTILL_TEMPERATURE,
    SEED,
)


def add_parser(sub) -> None:
    """Register ``distill``."""
    p = sub.add_parser(
        "distill",
        help="distil a run into a small student model (knowledge distillation) and compare the two",
        description="Train a small student on a finished run's soft labels (Hinton et al.: KL between the "
        "teacher's and the student's distributions softened by T, times T², plus the cross-entropy on "
        "the hard labels; images of --unlabelled add the soft term only), on the teacher's own "
        "train/validation/test split. The student is a normal run folder (export, evaluate and predict "
        "take it); it is then checked against its teacher on the test split: top-1 agreement, accuracy "
        "with a 95%% interval, latency and size.",
    )
    p.add_argument("run", metavar="RUN", type=Path, help="the teacher: a finished run folder")
    p.add_argument(
        "--student",
        required=True,
        metavar="NAME",
        help=f"the student's backbone: {' or '.join(DISTILL_STUDENTS)} (EfficientNet-Lite0's ImageNet "
        "weights need no network: the [offline] extra), any backbone of `tlstudio backbones`, "
        "or a model file",
    )
    p.add_argument("--out", required=True, type=Path, metavar="STUDENT_RUN", help="the student's run folder")
    p.add_argument(
        "--student-weights",
        default="imagenet",
        metavar="imagenet|none|FILE",
        help="the student's starting weights (imagenet: downloaded once where not cached, "
        "`tlstudio weights NAME`; none: from scratch)",
    )
    p.add_argument(
        "--unlabelled", type=Path, metavar="DIR", help="extra images without labels (the soft term only)"
    )
    p.add_argument("--epochs", type=int, default=DISTILL_EPOCHS, metavar="N", help=f"({DISTILL_EPOCHS})")
    p.add_argument(
        "--temperature",
        type=float,
        default=DISTILL_TEMPERATURE,
        metavar="T",
        help=f"({DISTILL_TEMPERATURE:g})",
    )
    p.add_argument(
        "--soft-weight",
        type=float,
        default=DISTILL_SOFT_WEIGHT,
        metavar="W",
        help=f"weight of the soft term; the hard labels get 1 - W ({DISTILL_SOFT_WEIGHT:g})",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        default=DISTILL_LEARNING_RATE,
        metavar="X",
        help=f"Adam, cosine decay ({DISTILL_LEARNING_RATE:g})",
    )
    p.add_argument(
        "--batch-size", type=int, default=DISTILL_BATCH_SIZE, metavar="N", help=f"({DISTILL_BATCH_SIZE})"
    )
    p.add_argument("--image-size", type=int, metavar="PX", help="the student's input size (its default)")
    p.add_argument("--seed", type=int, default=SEED, help=f"({SEED})")
    p.add_argument("--overwrite", action="store_true", help="replace what STUDENT_RUN holds")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Check the input, distil, report."""
    from tlstudio.core.training.distill_inputs import DistillSettings, distill_problem

    settings = DistillSettings(
        student=args.student,
        student_weights=args.student_weights,
        epochs=args.epochs,
        temperature=args.temperature,
        soft_weight=args.soft_weight,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        image_size=args.image_size,
        seed=args.seed,
    )
    why = distill_problem(args.run, args.out, settings, unlabelled=args.unlabelled, overwrite=args.overwrite)
    if why is not None:
        return fail("distill", why, 2)
    quiet_tensorflow()
    from tlstudio.core.backbone.sources import BackboneError
    from tlstudio.core.backbone.weights import ensure_imagenet_weights
    from tlstudio.core.results.run_folder import RunFolderError
    from tlstudio.core.training.distill import distill, student_settings
    from tlstudio.core.training.distill_check import describe
    from tlstudio.progress import ProgressPrinter

    student = student_settings(settings)
    try:  # a student whose ImageNet weights are neither cached nor downloadable: said before any work
        ensure_imagenet_weights(student.backbone, student.weights, student.image_size)
    except BackboneError as err:
        return fail("distill", f"{err} (or --student-weights none)", 2)
    try:
        result = distill(
            args.run,
            args.out,
            settings,
            unlabelled=args.unlabelled,
            on_event=None if args.json else ProgressPrinter(),
            overwrite=args.overwrite,
        )
    except RunFolderError as err:
        return fail("distill", str(err), 2)
    code = {"completed": 0, "stopped": 130, "failed_to_learn": 3}.get(result.status, 1)
    if args.json:
        print(
            json.dumps(
                {
                    "status": result.status,
                    "run_dir": str(result.run_dir),
                    "error": result.error,
                    "metrics": result.metrics,
                    "comparison": result.comparison,
                },
                default=float,
            )
        )
        return code
    if result.error:
        print(f"tlstudio distill: {result.error}", file=sys.stderr)
    if result.comparison:
        print(describe(result.comparison))
    return code
