"""`tlstudio inspect`: the dataset doctor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import fail, progress_printer
from tlstudio.cli.options import DATA_HELP, add_scan_options, add_split_options


def add_parser(sub) -> None:
    """Register ``inspect``."""
    p = sub.add_parser(
        "inspect",
        help="check a data folder (one sub-folder per class) and report its health",
        description="Scan DATA_DIR, report usable images per class, skipped files with reasons, "
        "duplicates and near-duplicates (kept in one split; across classes: label conflicts), tiny, "
        "dark, bright, blank and blurred images, imbalance and image sizes. Exit code 0 when the "
        "folder is usable.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", type=Path, help=DATA_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_scan_options(p)
    p.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="also write the stratified train/val/test split manifest (CSV) to FILE",
    )
    add_split_options(p)
    p.add_argument(
        "--label-issues",
        action="store_true",
        help="also list likely label errors, most likely first: each image judged by a linear probe on "
        "BACKBONE's features that never saw it (5-fold), confident learning (cleanlab; a multi-label CSV: "
        "which labels of an image look missing or wrong); and the images "
        "unlike all others in those features (off-distribution)",
    )
    p.add_argument("--backbone", metavar="NAME_OR_PATH", help="the backbone that judges (--label-issues)")
    p.add_argument(
        "--weights", default="imagenet", help="its weights (imagenet, none, or a file; default imagenet)"
    )
    p.add_argument("--image-size", type=int, metavar="N", help="input size (default: the backbone's)")


def run(args: argparse.Namespace) -> int:
    from tlstudio.core.data.labels_csv import LabelsCsvError, data_source_problem
    from tlstudio.core.data.source import inspect_data
    from tlstudio.core.data.split import SplitConfig, make_split

    if (why := data_source_problem(args.data_dir)) is not None:
        return fail("inspect", why, 2)
    try:
        config = SplitConfig(args.val, args.test, args.seed)
    except ValueError as err:
        return fail("inspect", str(err), 2)
    check_labels = getattr(args, "label_issues", False)  # (the demo's own inspect has no such option)
    if check_labels and not args.backbone:
        return fail(
            "inspect", "--label-issues needs --backbone (the model whose features judge the labels)", 2
        )
    progress = None if args.json or not sys.stderr.isatty() else progress_printer("Scanning")
    try:
        report = inspect_data(args.data_dir, deep=args.deep, on_progress=progress)
    except LabelsCsvError as err:
        return fail("inspect", str(err), 2)
    manifest = None
    if args.manifest and report.usable:
        manifest = make_split(report.images, config, multi_label=report.task == "multi_label")
        manifest.save(args.manifest)
    issues = outliers = None
    if check_labels and report.usable:
        found = label_issues(args, report)
        if isinstance(found, int):
            return found
        issues, outliers = found
    if args.json:
        data = report.to_dict()
        if issues is not None:
            data["label_issues"] = [i.to_dict() for i in issues]
            data["outliers"] = [o.to_dict() for o in outliers]
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
        if issues is not None:
            multi = report.task == "multi_label"
            print(format_multilabel_issues(issues) if multi else format_label_issues(issues))
            print(format_outliers(outliers))
    if not report.usable:
        return fail("inspect", f"not usable: {report.problem}")
    return 0


def label_issues(args: argparse.Namespace, report):
    """(likely label errors, outliers), or an exit code when they cannot be computed."""
    from tlstudio.cli.common import quiet_tensorflow

    quiet_tensorflow()
    from tlstudio.core.backbone.sources import BackboneError
    from tlstudio.core.training.label_issues import check_labels

    say = None if args.json else (lambda text: print(f"Label check: {text}…", file=sys.stderr))
    try:
        return check_labels(
            report, args.backbone, weights=args.weights, image_size=args.image_size, progress=say
        )
    except (BackboneError, ValueError) as err:
        return fail("inspect", str(err), 2)


def format_label_issues(issues, shown: int = 20) -> str:
    """The first ``shown`` likely label errors as lines of text."""
    if not issues:
        return "\nPossible label errors: none (every image's label agrees with the backbone's judgement)."
    sure = sum(1 for i in issues if i.confident)
    lines = [
        f"\nPossible label errors: {len(issues)}, most likely first; * = flagged by confident learning "
        f"({sure}). Look at each, then move it or keep it."
    ]
    for issue in issues[:shown]:
        lines.append(
            f"  {'*' if issue.confident else ' '} {issue.path}: labelled {issue.given}, looks like "
            f"{issue.suggested} ({issue.confidence:.0%} against {issue.given_probability:.0%} for its label)"
        )
    if len(issues) > shown:
        lines.append(f"  … and {len(issues) - shown} more (all of them with --json)")
    return "\n".join(lines)


def format_multilabel_issues(issues, shown: int = 20) -> str:
    """The first ``shown`` images whose labels look missing or wrong, as lines of text."""
    if not issues:
        return "\nPossible label errors: none (every image's labels agree with the backbone's judgement)."
    sure = sum(1 for i in issues if i.confident)
    lines = [
        f"\nPossible label errors: {len(issues)} images, most likely first; * = flagged by confident "
        f"learning ({sure}). Look at each, then fix its labels in the CSV or keep them."
    ]
    for issue in issues[:shown]:
        said = [f"missing {m} ({issue.probabilities[m]:.0%})" for m in issue.missing]
        said += [f"wrong {w} ({issue.probabilities[w]:.0%})" for w in issue.wrong]
        given, suggested = ";".join(issue.given) or "(none)", ";".join(issue.suggested) or "(none)"
        star = "*" if issue.confident else " "
        lines.append(f"  {star} {issue.path}: labelled {given}, {', '.join(said)} → {suggested}")
    if len(issues) > shown:
        lines.append(f"  … and {len(issues) - shown} more (all of them with --json)")
    return "\n".join(lines)


def format_outliers(outliers, shown: int = 10) -> str:
    """The off-distribution images as lines of text."""
    if not outliers:
        return "\nOff-distribution images: none (no image is far from all others in the backbone's features)."
    lines = [
        f"\nOff-distribution images: {len(outliers)}, farthest first (mean cosine distance to the nearest "
        f"images; the fence is {outliers[0].fence:.3f}). Are they in the right folder at all?"
    ]
    lines += [f"  {o.path} ({o.label}): {o.distance:.3f}" for o in outliers[:shown]]
    if len(outliers) > shown:
        lines.append(f"  … and {len(outliers) - shown} more (all of them with --json)")
    return "\n".join(lines)
