"""Command-line front door. Heavy modules (TensorFlow, Pillow, Qt) are imported inside commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tlstudio import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tlstudio",
        description="TL Studio: transfer learning on images with Keras. "
        "Without a command it opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"tlstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    inspect = sub.add_parser(
        "inspect",
        help="check a data folder (one sub-folder per class) and report its health",
        description="Scan DATA_DIR, report usable images per class, skipped files with reasons, "
        "duplicates, imbalance and image sizes. Exit code 0 when the folder is usable.",
    )
    inspect.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    _add_scan_options(inspect)
    inspect.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="also write the stratified train/val/test split manifest (CSV) to FILE",
    )
    _add_split_options(inspect)
    inspect.set_defaults(handler=_cmd_inspect)

    backbones = sub.add_parser("backbones", help="list the Keras Applications backbones")
    backbones.add_argument("--json", action="store_true", help="print a JSON list")
    backbones.set_defaults(handler=_cmd_backbones)

    train = sub.add_parser(
        "train",
        help="train a classifier on DATA_DIR and export it",
        description="Train with the two-phase recipe (frozen backbone + new head, then the top blocks "
        "unfrozen at a 10x lower learning rate), early stopping on validation loss with the best "
        "weights restored, then export a verified SavedModel into RUN_DIR/saved_model.",
    )
    train.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        type=Path,
        nargs="?",
        help="the data folder (not needed with --project)",
    )
    train.add_argument(
        "--project",
        type=Path,
        metavar="FILE",
        help="run a project file saved by the desktop app (its data, split and settings)",
    )
    train.add_argument(
        "--backbone",
        metavar="NAME_OR_PATH",
        help="a Keras Applications name (see `tlstudio backbones`), a .keras/.h5 model file, "
        "or a SavedModel folder",
    )
    train.add_argument(
        "--out",
        type=Path,
        metavar="RUN_DIR",
        help="the run folder to write (with --project: a new folder in the project's runs)",
    )
    _add_training_options(train)
    _add_split_options(train)
    train.set_defaults(handler=_cmd_train)

    compare = sub.add_parser(
        "compare",
        help="train several backbones / freeze plans (and a from-scratch baseline) on one split",
        description="Train every backbone (× every freeze plan) on the same split with the same settings, "
        "optionally the first one from random weights too (--baseline), and print a table: test "
        "accuracy, macro F1, training time, model size and latency per image on this machine. Writes "
        "OUT/comparison.json, .csv and .png (validation curves overlaid) and one run folder per candidate.",
    )
    compare.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    compare.add_argument(
        "--backbones", required=True, metavar="A,B,...", help="names or model files, comma-separated"
    )
    compare.add_argument(
        "--plans", metavar="P,Q,...", help="freeze plans to try for each backbone, e.g. all,none"
    )
    compare.add_argument(
        "--baseline",
        action="store_true",
        help="add the first candidate trained from random weights, every layer trainable, same budget",
    )
    compare.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for the runs and tables"
    )
    compare.add_argument("--json", action="store_true", help="print the table as JSON")
    _add_training_options(compare)
    _add_split_options(compare)
    compare.set_defaults(handler=_cmd_compare)

    runs = sub.add_parser(
        "runs",
        help="list a project's runs, or compare two of them",
        description="List the runs of a project file (or of a folder of run folders) with their "
        "status, backbone, data hash and test results; --diff A B shows two runs side by side: "
        "the settings that differ, whether the data was the same, and every metric.",
    )
    runs.add_argument("source", metavar="PROJECT_OR_FOLDER", type=Path)
    runs.add_argument(
        "--diff", nargs=2, metavar=("A", "B"), help="two runs: numbers from the list or folder names"
    )
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.set_defaults(handler=_cmd_runs)

    evaluate = sub.add_parser("evaluate", help="score an exported model on a labelled folder")
    evaluate.add_argument("model", metavar="MODEL", type=Path, help="a SavedModel folder or a run folder")
    evaluate.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--manifest", type=Path, metavar="FILE", help="evaluate the files of this manifest")
    evaluate.add_argument("--split", choices=["train", "val", "test"], help="with --manifest: one split")
    evaluate.add_argument("--predictions", action="store_true", help="with --json: include every prediction")
    evaluate.add_argument(
        "--report",
        type=Path,
        metavar="FILE.html",
        help="also write an HTML report (metrics, confusion matrix, calibration, worst errors with Grad-CAM)",
    )
    evaluate.set_defaults(handler=_cmd_evaluate)

    predict = sub.add_parser("predict", help="classify image files with an exported model")
    predict.add_argument("model", metavar="MODEL", type=Path, help="a SavedModel folder or a run folder")
    predict.add_argument("images", metavar="IMAGE", nargs="+", type=Path)
    predict.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per image (3)")
    predict.add_argument("--json", action="store_true", help="print a JSON list")
    predict.set_defaults(handler=_cmd_predict)

    gui = sub.add_parser("gui", help="open the desktop app (the same as `tlstudio` without a command)")
    gui.add_argument("project", nargs="?", type=Path, help="a project file to open")
    gui.set_defaults(handler=_cmd_gui)

    demo = sub.add_parser("demo", help="inspect, train and export on the bundled sample dataset")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        metavar="DIR",
        help="the run folder (default: runs/demo)",
    )
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `train` and `compare`."""
    from tlstudio.core.settings import CLASS_WEIGHTS, OPTIMIZERS, STRATEGIES  # pure data, no TensorFlow

    p.add_argument(
        "--weights",
        default="imagenet",
        metavar="imagenet|none|FILE",
        help="backbone weights (default imagenet; none = from scratch, the baseline)",
    )
    p.add_argument("--image-size", type=int, metavar="N", help="square input size (default: the backbone's)")
    p.add_argument("--epochs", type=int, default=20, metavar="N", help="phase 1 epochs (20)")
    p.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=None,
        metavar="N",
        help="phase 2 epochs (default: sized by the number of training images, see the README's "
        "recipe table; 0 = no fine-tuning phase)",
    )
    p.add_argument(
        "--fine-tune-lr-decay",
        type=float,
        default=0.5,
        metavar="F",
        help="phase 2: each lower block learns at F times the rate of the block above (0.5; 1 = same rate)",
    )
    p.add_argument(
        "--fine-tune-blocks", type=int, default=2, metavar="N", help="top blocks unfrozen in phase 2 (2)"
    )
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="(32)")
    p.add_argument("--learning-rate", type=float, default=1e-3, metavar="X", help="phase 1 rate (0.001)")
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    p.add_argument(
        "--freeze",
        default="all",
        metavar="PLAN",
        help="all (default: feature extraction, then fine-tuning), none, top:N, first:P%%",
    )
    p.add_argument(
        "--train-batchnorm",
        action="store_true",
        help="let BatchNorm layers train (default: frozen, in inference mode)",
    )
    p.add_argument("--dropout", type=float, default=0.2, metavar="F", help="head dropout (0.2)")
    p.add_argument(
        "--dense", default="", metavar="UNITS", help="extra dense layers in the head, e.g. 256,128 (none)"
    )
    p.add_argument("--no-augment", action="store_true", help="turn off flip/rotation augmentation")
    p.add_argument(
        "--no-feature-cache",
        action="store_true",
        help="recompute the frozen backbone every epoch (default: with the backbone frozen and no "
        "augmentation, its features are computed once and cached in the run folder)",
    )
    p.add_argument(
        "--no-interpolate",
        action="store_true",
        help="skip WiSE-FT: by default the exported weights are the mix of the linear probe's and the "
        "fine-tuned ones with the lowest validation loss",
    )
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (text, digits, maps)")
    p.add_argument("--zoom", type=float, default=0.0, metavar="F", help="random zoom augmentation (0)")
    p.add_argument(
        "--contrast", type=float, default=0.0, metavar="F", help="random contrast augmentation (0)"
    )
    p.add_argument(
        "--class-weights",
        default="auto",
        choices=CLASS_WEIGHTS,
        help="auto: balanced weights when classes are imbalanced past 5:1",
    )
    p.add_argument("--patience", type=int, default=5, metavar="N", help="early stopping patience (5)")
    p.add_argument("--cut-at", metavar="LAYER", help="model files: the layer whose output are the features")
    p.add_argument(
        "--preprocessing",
        choices=["none", "unit", "tf", "caffe", "torch"],
        help="override the input preprocessing (model files default to none: the model takes 0-255 pixels)",
    )
    p.add_argument("--manifest", type=Path, metavar="FILE", help="reuse a split manifest")
    p.add_argument("--mixed-precision", action="store_true", help="float16 compute (GPU)")
    p.add_argument(
        "--strategy",
        default="default",
        choices=STRATEGIES,
        help="mirrored: data-parallel over every local GPU (tf.distribute.MirroredStrategy); "
        "multiworker: over several machines, one command per machine with TF_CONFIG set "
        "(the chief, or worker 0, records the run and exports; see the README)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="fit temperature scaling on the validation split and bake it into the export",
    )


def _add_scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--deep",
        action="store_true",
        help="decode every image fully (slower) instead of header and structure checks",
    )


def _add_split_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val", type=float, default=0.15, metavar="F", help="validation fraction (0.15)")
    p.add_argument("--test", type=float, default=0.15, metavar="F", help="test fraction (0.15)")
    p.add_argument("--seed", type=int, default=42, help="split seed (42)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("tlstudio: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tlstudio evaluate ... | head`
        sys.stderr.close()
        return 0


def _fail(command: str, message: str, code: int = 1) -> int:
    print(f"tlstudio {command}: {message}", file=sys.stderr)
    return code


def _cmd_inspect(args: argparse.Namespace) -> int:
    from tlstudio.core.health import inspect_folder
    from tlstudio.core.split import SplitConfig, make_split

    if not args.data_dir.is_dir():
        return _fail("inspect", f"{args.data_dir} is not a folder", 2)
    try:
        config = SplitConfig(args.val, args.test, args.seed)
    except ValueError as err:
        return _fail("inspect", str(err), 2)
    progress = None if args.json or not sys.stderr.isatty() else _progress_printer("Scanning")
    report = inspect_folder(args.data_dir, deep=args.deep, on_progress=progress)
    manifest = None
    if args.manifest and report.usable:
        manifest = make_split(report.images, config)
        manifest.save(args.manifest)
    if args.json:
        data = report.to_dict()
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
    if not report.usable:
        return _fail("inspect", f"not usable: {report.problem}")
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    from tlstudio.gui.app import main as gui_main

    return gui_main([str(args.project)] if args.project else [])


def _cmd_backbones(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from tlstudio.core.backbones import list_backbones

    specs = list_backbones()
    if args.json:
        print(json.dumps([spec.to_dict() for spec in specs], indent=2))
        return 0
    print(f"{'name':<20} {'family':<20} {'params':>12} {'top-1':>6} {'input':>6} {'min':>4}  preprocessing")
    for spec in specs:
        params = f"{spec.params:,}" if spec.params else "?"
        top1 = f"{spec.imagenet_top1:.1%}" if spec.imagenet_top1 else "—"
        print(
            f"{spec.name:<20} {spec.family:<20} {params:>12} {top1:>6} {spec.default_size:>6} "
            f"{spec.min_size:>4}  {spec.preprocessing}"
        )
    print(
        "\ntop-1: ImageNet accuracy where the Keras documentation publishes it. "
        "params: without the ImageNet classification top. Also accepted as --backbone: a .keras/.h5 "
        "model file or a SavedModel folder."
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if args.project is not None:
        return _train_project(args)
    if args.data_dir is None or args.backbone is None or args.out is None:
        return _fail("train", "DATA_DIR, --backbone and --out are required (or give --project FILE)", 2)
    if not args.data_dir.is_dir():
        return _fail("train", f"{args.data_dir} is not a folder", 2)
    _quiet_tensorflow()
    try:
        settings = _settings_from_args(args)
    except ValueError as err:
        return _fail("train", str(err), 2)
    return _run_training(settings, args.data_dir, args.out, args.manifest)


def _train_project(args: argparse.Namespace) -> int:
    from tlstudio.core.project import Project

    try:
        project = Project.load(args.project)
    except ValueError as err:
        return _fail("train", str(err), 2)
    if not project.data_dir or not Path(project.data_dir).is_dir():
        return _fail("train", f"the project's data folder {project.data_dir} is not there", 2)
    if not project.settings.backbone:
        return _fail("train", "the project has no backbone chosen yet", 2)
    _quiet_tensorflow()
    settings = (
        project.settings if args.strategy == "default" else project.settings.but(strategy=args.strategy)
    )
    out = args.out or project.new_run_dir()
    manifest = project.manifest_path if project.manifest_path and project.manifest_path.is_file() else None
    code, result = _run_training(settings, Path(project.data_dir), out, manifest, with_result=True)
    if result is not None and result.primary:
        project = Project.load(args.project)  # the app may have saved meanwhile: add to the latest
        project.record_run(out, result.status, result.metrics)
        project.save()
    return code


def _settings_from_args(args: argparse.Namespace, backbone: str | None = None):
    from tlstudio.core.freezing import FreezePlan
    from tlstudio.core.settings import Augmentation, HeadSettings, TrainSettings

    plan = FreezePlan.parse(args.freeze)
    if args.train_batchnorm:
        plan = FreezePlan(plan.preset, plan.value, train_batchnorm=True)
    dense = tuple(int(u) for u in args.dense.split(",") if u.strip()) if args.dense else ()
    augment = (
        Augmentation(flip=False, rotation=0.0, zoom=args.zoom, contrast=args.contrast)
        if args.no_augment
        else Augmentation(flip=not args.no_flip, zoom=args.zoom, contrast=args.contrast)
    )
    return TrainSettings(
        backbone=backbone or args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        cut_at=args.cut_at,
        preprocessing=args.preprocessing,
        head=HeadSettings(dropout=args.dropout, dense_units=dense),
        freeze=plan,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_blocks=args.fine_tune_blocks,
        fine_tune_lr_decay=args.fine_tune_lr_decay,
        early_stopping_patience=args.patience,
        augmentation=augment,
        class_weights=args.class_weights,
        seed=args.seed,
        val_fraction=args.val,
        test_fraction=args.test,
        mixed_precision=args.mixed_precision,
        calibrate=args.calibrate,
        feature_cache=not args.no_feature_cache,
        interpolate=not args.no_interpolate,
        strategy=args.strategy,
    )


def _run_training(settings, data_dir: Path, out: Path, manifest: Path | None, with_result: bool = False):
    import signal
    import threading

    from tlstudio.core.training import TrainingSession
    from tlstudio.progress import ProgressPrinter

    stop = threading.Event()

    def request_stop(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        print("\nStopping after this batch (Ctrl-C again to abort)…", file=sys.stderr)
        stop.set()

    previous = signal.signal(signal.SIGINT, request_stop)
    if settings.strategy == "multiworker":
        from tlstudio.core.multi_worker import MultiWorkerError, joining_message, read_tf_config

        with contextlib.suppress(MultiWorkerError):  # the session says what is wrong
            print(joining_message(read_tf_config()), file=sys.stderr, flush=True)
    try:
        session = TrainingSession(
            settings, data_dir, out, manifest=manifest, on_event=ProgressPrinter(), stop_event=stop
        )
        result = session.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    code = {"completed": 0, "stopped": 130, "failed_to_learn": 3}.get(result.status, 1)
    return (code, result) if with_result else code


def _cmd_compare(args: argparse.Namespace) -> int:
    if not args.data_dir.is_dir():
        return _fail("compare", f"{args.data_dir} is not a folder", 2)
    _quiet_tensorflow()
    from tlstudio.core.comparison import candidates_for, compare, format_table
    from tlstudio.core.health import inspect_folder
    from tlstudio.core.split import Manifest, SplitConfig, make_split
    from tlstudio.progress import ProgressPrinter

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    plans = [p.strip() for p in args.plans.split(",") if p.strip()] if args.plans else None
    try:
        candidates = candidates_for(_settings_from_args(args, backbones[0]), backbones, plans, args.baseline)
        if args.manifest:
            manifest = Manifest.load(args.manifest)
        else:
            report = inspect_folder(args.data_dir)
            if not report.usable:
                return _fail("compare", f"not usable: {report.problem}")
            manifest = make_split(report.images, SplitConfig(args.val, args.test, args.seed))
    except (ValueError, IndexError) as err:
        return _fail("compare", str(err) or "give at least one backbone", 2)
    for c in candidates:
        print(f"· {c.name}", file=sys.stderr)
    rows = compare(candidates, args.data_dir, manifest, args.out, on_event=ProgressPrinter())
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
        print(f"\nRuns, comparison.csv and comparison.png (curves overlaid) in {args.out}")
    return 0 if all(r.status == "completed" for r in rows) else 1


def _cmd_runs(args: argparse.Namespace) -> int:
    from tlstudio.core.project import Project
    from tlstudio.core.run_history import compare_runs, load_run, project_runs

    if args.source.is_file():
        try:
            records = project_runs(Project.load(args.source).runs)
        except ValueError as err:
            return _fail("runs", str(err), 2)
    elif args.source.is_dir():
        records = [load_run(d) for d in sorted(args.source.iterdir()) if (d / "run.json").is_file()]
    else:
        return _fail("runs", f"{args.source} is neither a project file nor a folder", 2)
    if not records:
        return _fail("runs", f"no runs in {args.source}")
    if args.diff:
        by_key = {str(i): r for i, r in enumerate(records, start=1)} | {r.name: r for r in records}
        missing = [k for k in args.diff if k not in by_key]
        if missing:
            return _fail("runs", f"no run {missing[0]} (give a number from the list or a folder name)", 2)
        result = compare_runs(by_key[args.diff[0]], by_key[args.diff[1]])
        if args.json:
            print(json.dumps(result, indent=2, default=str))
            return 0
        a, b = result["runs"]
        print(f"{a}  vs  {b}   (same data: {'yes' if result['same_data'] else 'NO'})\n")
        print("Settings that differ:" if result["settings_diff"] else "Same settings.")
        for row in result["settings_diff"]:
            print(f"  {row['setting']:<32} {row[a]!s:>20}  {row[b]!s:>20}")
        print("\nMetrics:")
        for row in result["metrics"]:
            print(f"  {row['metric']:<32} {_num(row[a]):>20}  {_num(row[b]):>20}")
        return 0
    if args.json:
        print(json.dumps([vars(r) for r in records], indent=2, default=str))
        return 0
    print(f"{'#':>3}  {'run':<26} {'status':<10} {'backbone':<22} {'test acc':>8} {'macro F1':>8}  data")
    for i, r in enumerate(records, start=1):
        print(
            f"{i:>3}  {r.name:<26} {r.status:<10} {Path(r.backbone).name[:22]:<22} "
            f"{_num(r.metrics.get('test_accuracy')):>8} {_num(r.metrics.get('test_macro_f1')):>8}  "
            f"{(r.manifest_fingerprint or '?')[:10]}"
        )
    return 0


def _num(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "—" if value is None else str(value)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from tlstudio.core.evaluation import evaluate_folder, load_exported
    from tlstudio.core.split import Manifest

    if not args.data_dir.is_dir():
        return _fail("evaluate", f"{args.data_dir} is not a folder", 2)
    try:
        model = load_exported(args.model)
        manifest = Manifest.load(args.manifest) if args.manifest else None
        result = evaluate_folder(model, args.data_dir, manifest=manifest, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        return _fail("evaluate", str(err))
    if args.report:
        _write_evaluation_report(args, model, result)
    if args.json:
        print(json.dumps(result.to_dict(with_predictions=args.predictions), indent=2, ensure_ascii=False))
        return 0
    m = result.metrics
    print(f"Accuracy {result.accuracy:.4f} on {result.num_images} images ({len(result.skipped)} skipped)")
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


def _write_evaluation_report(args: argparse.Namespace, model, result) -> None:
    """The HTML report, with Grad-CAM when the export's model.keras is beside it."""
    import keras

    from tlstudio.core.gradcam import GradCam, GradCamError
    from tlstudio.core.report import write_report

    run_dir = model.path.parent
    cam = None
    if (run_dir / "model.keras").is_file():
        try:
            cam = GradCam(keras.models.load_model(run_dir / "model.keras", safe_mode=True))
        except (GradCamError, ValueError) as err:
            print(f"tlstudio evaluate: no Grad-CAM in the report: {err}", file=sys.stderr)
    write_report(
        args.report,
        result,
        args.data_dir,
        title=f"TL Studio evaluation of {model.path}",
        run_dir=run_dir if (run_dir / "history.json").is_file() else None,
        gradcam=cam,
    )
    print(f"Report written to {args.report}", file=sys.stderr)


def _cmd_predict(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from tlstudio.core.evaluation import load_exported, predict_files

    try:
        model = load_exported(args.model)
    except (FileNotFoundError, ValueError) as err:
        return _fail("predict", str(err))
    results = predict_files(model, args.images, top=args.top)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for item in results:
            if "error" in item:
                print(f"{item['path']}: cannot read: {item['error']}")
            else:
                tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in item["top"])
                print(f"{item['path']}: {tops}")
    return 1 if any("error" in item for item in results) else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tlstudio.samples import sample_dataset

    data = sample_dataset()
    print(f"TL Studio demo on the bundled sample dataset: {data}\n")
    manifest_path = args.out / "manifest.csv"
    code = _cmd_inspect(
        argparse.Namespace(
            data_dir=data, json=False, deep=False, manifest=manifest_path, val=0.15, test=0.15, seed=42
        )
    )
    if code:
        return code
    print("\nTraining a small CNN from scratch on it (the backbone is built here; no download)…\n")
    _quiet_tensorflow()
    from tlstudio.core.settings import Augmentation, TrainSettings

    settings = TrainSettings(
        backbone=str(_demo_backbone(args.out)),
        epochs=30,
        fine_tune_epochs=0,
        batch_size=32,
        learning_rate=3e-3,
        freeze=_plan("none"),
        early_stopping_patience=5,
        augmentation=Augmentation(flip=False),  # digits are not mirror-symmetric
    )
    code = _run_training(settings, data, args.out, manifest_path)
    if code == 0:
        print(f"\nTry: tlstudio predict {args.out} {next(iter(sorted(data.glob('3_*/*.png'))))}")
    return code


def _plan(text: str):
    from tlstudio.core.freezing import FreezePlan

    return FreezePlan.parse(text)


def _demo_backbone(out: Path) -> Path:
    """A small CNN saved as a .keras file, to show the 'your own model as backbone' path offline."""
    import keras

    path = out / "demo_backbone.keras"
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, x, name="demo_cnn").save(path)
    return path


def _quiet_tensorflow() -> None:
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()


def _progress_printer(label: str):
    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total} files", end=end, file=sys.stderr, flush=True)

    return show
