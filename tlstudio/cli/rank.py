"""`tlstudio rank`: which backbone suits this data, before training any."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import data_problem, fail, quiet_tensorflow


def add_parser(sub) -> None:
    """Register ``rank``."""
    from tlstudio.cli.options import add_split_options

    p = sub.add_parser(
        "rank",
        help="rank candidate backbones on your data before training (frozen features, minutes)",
        description="Computes each candidate's features of DATA_DIR's training split once, then scores "
        "them: the accuracy of a cross-validated linear probe (the estimated accuracy of a frozen-backbone "
        "model: the score the list is ordered by), a 10-nearest-neighbour vote and LogME, each with a "
        "95%% interval; on multi-label data (a labels CSV) the probe and k-NN are scored by macro mAP. "
        "Candidates the data cannot tell from the best are marked. It estimates the "
        "frozen-backbone start, not the fine-tuned end: see docs/benchmarks.md for how well it "
        "predicted fine-tuned accuracy. Every candidate is checked before any is built (name, model "
        "file, image size, weights cached or downloadable): a bad one exits 2 at once, one line per "
        "candidate. A candidate that fails during its work is listed with its reason after the ranked "
        "ones (exit 1).",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    p.add_argument(
        "--backbones", required=True, metavar="A,B,...", help="names or model files, comma-separated"
    )
    p.add_argument("--weights", default="imagenet", help="their weights (imagenet, none; default imagenet)")
    p.add_argument("--image-size", type=int, metavar="N", help="input size for all (default: each one's own)")
    add_split_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    if (why := data_problem(args.data_dir)) is not None:
        return fail("rank", why, 2)
    names = [b.strip() for b in args.backbones.split(",") if b.strip()]
    if not names:
        return fail("rank", "--backbones names no backbone", 2)
    if len(set(names)) != len(names):
        return fail("rank", "--backbones names a backbone twice", 2)
    if args.image_size is not None and args.image_size < 16:
        return fail("rank", "--image-size must be at least 16", 2)
    from tlstudio.core.data.labels_csv import LabelsCsvError
    from tlstudio.core.data.source import inspect_data
    from tlstudio.core.data.split import SplitConfig

    try:
        split = SplitConfig(args.val, args.test, args.seed)
    except ValueError as err:
        return fail("rank", str(err), 2)
    try:
        report = inspect_data(args.data_dir)
    except LabelsCsvError as err:
        return fail("rank", str(err), 2)
    if not report.usable:
        return fail("rank", f"not usable: {report.problem}")
    quiet_tensorflow()
    from tlstudio.core.backbone.sources import BackboneError
    from tlstudio.core.training.rank_check import CandidateProblems, problem_line
    from tlstudio.core.training.ranking import rank_backbones

    say = None if args.json else (lambda text: print(f"Ranking: {text}…", file=sys.stderr))
    try:
        ranked = rank_backbones(
            report, names, weights=args.weights, image_size=args.image_size, split=split, progress=say
        )
    except CandidateProblems as err:  # found before any candidate was built: every one said
        for candidate, reason in err.problems:
            fail("rank", problem_line(candidate, reason), 2)
        return 2
    except (BackboneError, ValueError) as err:
        return fail("rank", str(err), 2)
    done = [r for r in ranked if r.error is None]
    failed = [r for r in ranked if r.error is not None]
    if args.json:
        print(
            json.dumps(
                {
                    "ranking": [r.to_dict() for r in done],
                    "failed": [r.to_dict() for r in failed],
                    "indistinguishable_from_best": [r.backbone for r in done if r.tied_with_best],
                    "images": ranked[0].images,
                    "classes": sorted(report.classes),
                    "task": report.task,
                    "metric": ranked[0].metric,
                },
                indent=2,
            )
        )
    else:
        print(format_ranking(ranked))
    if failed:
        return fail("rank", f"{len(failed)} of {len(ranked)} candidates failed during their work (see above)")
    return 0


def format_ranking(ranked) -> str:
    """The ranking as a table with what it means (multi-label: the probe's and k-NN's macro mAP)."""
    multi = bool(ranked) and ranked[0].metric == "macro_map"
    name = "probe mAP" if multi else "probe acc."
    lines = [
        f"{'':2}{'backbone':<28}{name:>11}{'95% interval':>16}{'k-NN':>7}{'LogME':>8}"
        f"{'params':>10}{'ms/img':>8}{'s':>7}"
    ]
    for r in ranked:
        if r.error is not None:  # failed during its work: the reason instead of scores
            lines.append(f"{'✗':2}{Path(r.backbone).name[:27]:<28}failed: {r.error}")
            continue
        mark = "=" if r.tied_with_best else " "
        lines.append(
            f"{mark:2}{Path(r.backbone).name[:27]:<28}{r.score:>11.3f}"
            f"{f'{r.interval[0]:.2f}–{r.interval[1]:.2f}':>16}{r.knn:>7.3f}{r.logme:>8.3f}"
            f"{_count(r.parameters):>10}{r.ms_per_image:>8.1f}{r.seconds:>7.1f}"
        )
    tied = [r for r in ranked if r.tied_with_best]
    done = [r for r in ranked if r.error is None]
    if not done:
        return "\n".join([*lines, "\nNo candidate could be ranked: each failed, for the reason on its line."])
    meaning = (
        "the macro mAP (average precision per label, averaged) of a cross-validated one-vs-rest probe "
        "on frozen features (what a frozen-backbone model would score; k-NN: of the neighbours' votes)"
        if multi
        else "the cross-validated accuracy of a linear probe on frozen features (what a frozen-backbone "
        "model would score)"
    )
    lines.append(
        f"\n{name} = {meaning}; = marks candidates this data cannot tell apart from the best"
        + (f" ({len(tied)} of {len(done)}: more images would separate them)." if len(tied) > 1 else ".")
        + (
            "\n✗ marks candidates that failed during their work: the others are ranked without them."
            if len(done) < len(ranked)
            else ""
        )
    )
    return "\n".join(lines)


def _count(parameters: int) -> str:
    """23,920 → 23.9k; 4,049,571 → 4.0M."""
    return f"{parameters / 1e6:.1f}M" if parameters >= 1e6 else f"{parameters / 1e3:.1f}k"
