"""`tlstudio suggest`: which unlabelled images to label next."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import fail, progress_printer, quiet_tensorflow


def add_parser(sub) -> None:
    """Register ``suggest``."""
    from tlstudio.core.settings import PSEUDO_FOLDER, PSEUDO_LABEL_CONFIDENCE
    from tlstudio.core.settings import SUGGEST_COUNT as DEFAULT_COUNT
    from tlstudio.core.settings import SUGGEST_POOL_FACTOR as POOL_FACTOR

    p = sub.add_parser(
        "suggest",
        help="rank unlabelled images by what labelling them would teach a trained run",
        description="Ranks the images of UNLABELLED_DIR (sub-folders included) for labelling: from the "
        f"{POOL_FACTOR}×N images the run's model is least sure of (the margin between its two likeliest "
        "classes), N picked one by one, each the most uncertain and farthest (in the backbone's features) "
        "from those already picked. Images already in the run's data are skipped. Copy each labelled "
        "image into its class folder (the app's Label next tab does that), then train again.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run folder (its best checkpoint is used)")
    p.add_argument("unlabelled", metavar="UNLABELLED_DIR", type=Path, help="images without a class")
    p.add_argument("--n", type=int, default=DEFAULT_COUNT, metavar="N", help=f"how many ({DEFAULT_COUNT})")
    p.add_argument(
        "--pseudo-label",
        type=Path,
        metavar="DATA_DIR",
        help="also copy the images the run is sure of (--min-confidence) into "
        f"DATA_DIR/CLASS/{PSEUDO_FOLDER}/ (a multi-label run: give its labels CSV; the images go into "
        f"{PSEUDO_FOLDER}/ beside it, listed with their labels): "
        "training uses them, validation and test never do; off unless given",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=PSEUDO_LABEL_CONFIDENCE,
        metavar="P",
        help=f"how sure the run must be for a pseudo-label ({PSEUDO_LABEL_CONFIDENCE})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    for path, what in ((args.run_dir, "RUN_DIR"), (args.unlabelled, "UNLABELLED_DIR")):
        if not path.is_dir():  # said before TensorFlow loads (seconds)
            return fail("suggest", f"{what} {path} is not a folder", 2)
    if args.n < 1:
        return fail("suggest", "--n must be at least 1", 2)
    if not 0.5 <= args.min_confidence <= 1.0:
        return fail("suggest", "--min-confidence must be between 0.5 and 1", 2)
    multi = _multi_label(args.run_dir)
    if args.pseudo_label is not None and multi and not args.pseudo_label.is_file():
        return fail(
            "suggest", f"--pseudo-label {args.pseudo_label} is not a file: give the run's labels CSV", 2
        )
    if args.pseudo_label is not None and not multi and not args.pseudo_label.is_dir():
        return fail("suggest", f"--pseudo-label {args.pseudo_label} is not a folder", 2)
    from tlstudio.core.results.run_folder import run_status

    status = run_status(args.run_dir).get("status")
    if status in ("failed_to_learn", "running"):  # its judgement (and its labels) would be worthless
        why = "did not learn" if status == "failed_to_learn" else "is still training"
        return fail("suggest", f"{args.run_dir} {why}: suggest from a run that learned", 2)
    quiet_tensorflow()
    from tlstudio.core.deploy.restore import RestoreError
    from tlstudio.core.training.label_next import copy_pseudo_labels, suggest

    show = None if args.json or not sys.stderr.isatty() else progress_printer("Ranking")
    try:
        result = suggest(
            args.run_dir, args.unlabelled, args.n, min_confidence=args.min_confidence, progress=show
        )
    except (RestoreError, ValueError) as err:
        return fail("suggest", str(err))
    from tlstudio.core.data.relabel import RelabelError
    from tlstudio.core.training.label_next_multilabel import copy_pseudo_label_rows

    copy = copy_pseudo_label_rows if multi else copy_pseudo_labels
    try:
        copies = (
            copy(args.pseudo_label, args.unlabelled, result.confident)
            if args.pseudo_label is not None
            else None
        )
    except RelabelError as err:
        return fail("suggest", str(err))
    if args.json:
        data = result.to_dict()
        if copies is not None:
            data["pseudo_labelled"] = copies
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    if result.task == "multi_label":
        print_label_suggestions(result)
        where = "beside the labels CSV, listed in it"
        print(f"{len(result.confident)} more the run is sure of for every label", end="")
        print(f": pseudo-labelled {where} (training only): {len(copies)}" if copies is not None else "")
        return 0
    print(
        f"Label these {len(result.items)} of {result.considered} unlabelled images first (most useful "
        f"first); classes: {', '.join(result.classes)}"
    )
    for rank, s in enumerate(result.items, start=1):
        print(
            f"{rank:>4}. {s.path}: looks like {s.predicted} ({s.confidence:.0%}) or {s.runner_up}; "
            f"uncertainty {s.uncertainty:.2f}"
        )
    print(f"{len(result.confident)} more the run is at least {args.min_confidence:.0%} sure of", end="")
    if copies is None:
        print(" (--pseudo-label DATA_DIR copies them into the data as pseudo-labels, for training only)")
    else:
        print(f": copied into {args.pseudo_label} as pseudo-labels (training only): {len(copies)}")
    if result.skipped:
        print(
            f"Skipped {len(result.skipped)}: "
            + "; ".join(f"{x['path']} ({x['reason']})" for x in result.skipped[:5])
        )
    return 0


def _multi_label(run_dir: Path) -> bool:
    """Whether the run's split says multi-label (False when it cannot be read: the restore says why)."""
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.results.run_folder import MANIFEST

    try:
        return Manifest.load(run_dir / MANIFEST).multi_label
    except (OSError, ValueError):
        return False


def print_label_suggestions(result) -> None:
    """A multi-label run's suggestions as lines of text."""
    print(
        f"Label these {len(result.items)} of {result.considered} unlabelled images first (most useful "
        f"first); labels: {', '.join(result.classes)}. Add each with its labels to the labels CSV (the "
        "app's Label next tab does that), then train again."
    )
    for rank, s in enumerate(result.items, start=1):
        labels = ", ".join(f"{x} ({s.probabilities[x]:.0%})" for x in s.predicted) or "no label"
        print(
            f"{rank:>4}. {s.path}: looks like {labels}; least sure of {s.least_sure} "
            f"({s.probabilities[s.least_sure]:.0%}); uncertainty {s.uncertainty:.2f}"
        )
    if result.skipped:
        print(
            f"Skipped {len(result.skipped)}: "
            + "; ".join(f"{x['path']} ({x['reason']})" for x in result.skipped[:5])
        )
