"""`tlstudio evaluate`: score an export on a labelled folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import data_problem, fail, quiet_tensorflow
from tlstudio.cli.options import DATA_HELP
from tlstudio.report_text import counted


def add_parser(sub) -> None:
    """Register ``evaluate``."""
    p = sub.add_parser("evaluate", help="score an exported model on a labelled folder")
    p.add_argument("model", metavar="MODEL", type=Path, help="a SavedModel folder or a run folder")
    p.add_argument("data_dir", metavar="DATA_DIR", type=Path, help=DATA_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--manifest", type=Path, metavar="FILE", help="evaluate the files of this manifest")
    p.add_argument("--split", choices=["train", "val", "test"], help="with --manifest: one split")
    p.add_argument("--predictions", action="store_true", help="with --json: include every prediction")
    p.add_argument(
        "--report",
        type=Path,
        metavar="FILE.html",
        help="also write an HTML report (metrics, confusion matrix, calibration, worst errors with Grad-CAM; "
        "multi-label: per-label scores, precision-recall curves and calibration)",
    )


def run(args: argparse.Namespace) -> int:
    from tlstudio.core.results import run_folder as files

    if not args.model.exists():  # said before TensorFlow loads (seconds)
        return fail("evaluate", f"{args.model} does not exist", 2)
    if (why := data_problem(args.data_dir, training=False)) is not None:
        return fail("evaluate", why, 2)
    if (why := unknown_labels(args.model, args.data_dir)) is not None:
        return fail("evaluate", why, 2)
    if args.manifest is not None and not args.manifest.is_file():
        return fail("evaluate", f"the split {args.manifest} is not there (a run's manifest.csv)", 2)
    if args.split is not None and args.manifest is None:
        if not (args.model / files.MANIFEST).is_file():  # a run folder knows its own split
            return fail(
                "evaluate", "--split needs --manifest (a run's manifest.csv), or a run folder as MODEL", 2
            )
        args.manifest = args.model / files.MANIFEST
    quiet_tensorflow()
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.results.evaluation import evaluate_folder, load_exported

    try:
        model = load_exported(args.model)
        manifest = Manifest.load(args.manifest) if args.manifest else None
        result = evaluate_folder(model, args.data_dir, manifest=manifest, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        return fail("evaluate", str(err))
    if args.report:
        write_evaluation_report(args, model, result)
    if args.json:
        print(json.dumps(result.to_dict(with_predictions=args.predictions), indent=2, ensure_ascii=False))
        return 0
    if getattr(result, "task", "") == "multi_label":
        print(multilabel_text(result))
        return 0
    m = result.metrics
    print(
        f"Accuracy {result.accuracy:.4f} on {counted(result.num_images, 'image')} "
        f"({len(result.skipped)} skipped)"
    )
    print(balanced_text(m))
    tops = ", ".join(f"top-{k} {v:.4f}" for k, v in m["top_k"].items() if k != "1")
    auc = m["auc"]["macro"]
    print(
        f"macro F1 {m['averages']['macro']['f1']:.4f}, weighted F1 {m['averages']['weighted']['f1']:.4f}"
        + (f", {tops}" if tops else "")
        + (f", ROC AUC {auc:.4f}" if auc is not None else "")
        + f", log loss {m['loss']:.4f}, ECE {m['ece']:.4f}\n"
    )
    width = max(len(x) for x in result.labels)
    print(f"{'class':<{width}}  precision  recall     f1  support")
    for name, row in result.per_class.items():
        print(
            f"{name:<{width}}  {row['precision']:>9.3f}  {row['recall']:>6.3f}  {row['f1']:>5.3f}  "
            f"{row['support']:>7}"
        )
    print("\nConfusion matrix (rows: true class, columns: predicted, same order):")
    for name, row in zip(result.labels, result.confusion_matrix, strict=True):
        print(f"{name:<{width}}  " + " ".join(f"{v:>4}" for v in row))
    return 0


def balanced_text(m: dict) -> str:
    """Balanced accuracy and macro F1, each with its 95% interval where there is one."""
    ci = m.get("intervals", {})

    def shown(key: str) -> str:
        return f"{m[key]:.4f}" + (f" (95% interval {ci[key][0]:.3f}–{ci[key][1]:.3f})" if key in ci else "")

    return f"Balanced accuracy {shown('balanced_accuracy')}, macro F1 {shown('macro_f1')}"


def unknown_labels(model, data) -> str | None:
    """Labels of a labels CSV that the model (its ``labels.txt``) does not know, in words; or None."""
    from tlstudio.core.data.labels_csv import is_labels_csv, read_labels_csv
    from tlstudio.core.results import run_folder as files

    if not is_labels_csv(data):
        return None
    known = next(
        (
            p
            for p in (model / files.LABELS, model / files.SAVED_MODEL / "assets" / files.LABELS)
            if p.is_file()
        ),
        None,
    )
    if known is None:
        return None
    names = set(known.read_text(encoding="utf-8").splitlines())
    unknown = sorted(set(read_labels_csv(data, training=False).labels) - names)
    if unknown:
        known_words = ", ".join(sorted(names))
        return f"{data} has labels the model does not know: {', '.join(unknown)} (it knows {known_words})"
    return None


def multilabel_text(result) -> str:
    """A multi-label evaluation as lines of text: the averages with their intervals, then per label."""
    m, ci = result.metrics, result.metrics["intervals"]

    def shown(key: str, value) -> str:
        if value is None:
            return "—"
        return f"{value:.4f}" + (f" ({ci[key][0]:.3f}–{ci[key][1]:.3f})" if key in ci else "")

    lines = [
        f"Multi-label: {counted(result.num_images, 'image')} ({len(result.skipped)} skipped), "
        f"{m['labels_per_image']:.2f} labels per image; 95% intervals in brackets",
        f"macro mAP {shown('macro_map', m['macro_map'])}, micro mAP {shown('micro_map', m['micro_map'])}",
        f"at the thresholds: macro F1 {shown('macro_f1', m['macro']['f1'])}, micro F1 "
        f"{shown('micro_f1', m['micro']['f1'])}, "
        f"subset accuracy {shown('subset_accuracy', m['subset_accuracy'])}, "
        f"Hamming loss {shown('hamming_loss', m['hamming_loss'])}",
        f"calibration: macro ECE {shown('macro_ece', m.get('macro_ece'))}",
        "",
    ]
    width = max(len("label"), *(len(x) for x in result.labels))
    lines.append(f"{'label':<{width}}  threshold     AP  precision  recall     f1  support    ECE")
    for name, row in m["per_label"].items():
        ap = "    —" if row["ap"] is None else f"{row['ap']:.3f}"
        ece = "    —" if row.get("ece") is None else f"{row['ece']:.3f}"
        lines.append(
            f"{name:<{width}}  {row['threshold']:>9.3f}  {ap:>5}  {row['precision']:>9.3f}  "
            f"{row['recall']:>6.3f}  {row['f1']:>5.3f}  {row['support']:>7}  {ece:>5}"
        )
    return "\n".join(lines)


def write_evaluation_report(args: argparse.Namespace, model, result) -> None:
    """The HTML report, with Grad-CAM when the export's model.keras is beside it (single-label)."""
    from tlstudio.core.data.labels_csv import data_root
    from tlstudio.core.results import run_folder as files
    from tlstudio.core.results.gradcam import GradCamError, gradcam_for_run
    from tlstudio.core.results.report import write_report

    run_dir = model.path.parent
    if getattr(result, "task", "") == "multi_label":
        from tlstudio.core.results.multilabel_report import write_multilabel_report

        write_multilabel_report(
            args.report,
            result,
            data_root(args.data_dir),
            title=f"TL Studio evaluation of {model.path}",
            run_dir=run_dir if (run_dir / files.HISTORY).is_file() else None,
        )
        print(f"Report written to {args.report}", file=sys.stderr)
        return
    cam = None
    if (run_dir / files.MODEL).is_file():
        try:
            cam, _ = gradcam_for_run(run_dir)
        except (GradCamError, ValueError) as err:
            print(f"tlstudio evaluate: no Grad-CAM in the report: {err}", file=sys.stderr)
    write_report(
        args.report,
        result,
        data_root(args.data_dir),  # (a labels CSV: its folder, where its paths start)
        title=f"TL Studio evaluation of {model.path}",
        run_dir=run_dir if (run_dir / files.HISTORY).is_file() else None,
        gradcam=cam,
    )
    print(f"Report written to {args.report}", file=sys.stderr)
