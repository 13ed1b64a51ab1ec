"""The argparse tree of every command, and the entry point. Heavy modules (TensorFlow, Pillow,
Qt) are imported inside commands, so `--help` stays fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tlstudio import __version__
from tlstudio.cli import auto, devices, export, lr_find, rank, suggest, sweep
from tlstudio.cli.backbones import run_backbones
from tlstudio.cli.compare import run_compare
from tlstudio.cli.demo import run_demo
from tlstudio.cli.desktop import run_desktop_entry
from tlstudio.cli.evaluate import run_evaluate
from tlstudio.cli.gui import run_gui
from tlstudio.cli.inspect import run_inspect
from tlstudio.cli.options import add_scan_options, add_split_options, add_training_options
from tlstudio.cli.predict import run_predict
from tlstudio.cli.runs import run_runs
from tlstudio.cli.train import run_train
from tlstudio.cli.weights import add_weights_command


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tlstudio",
        description="TL Studio: transfer learning on images with Keras. "
        "Without a command it opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"tlstudio {__version__}")
    desktop = parser.add_mutually_exclusive_group()
    desktop.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add TL Studio to this user's application menu, with its icon and *.tlstudio.json files "
        "(Linux desktops; $XDG_DATA_HOME, by default ~/.local/share)",
    )
    desktop.add_argument(
        "--uninstall-desktop-entry",
        action="store_true",
        help="remove what --install-desktop-entry added (projects and runs are kept)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    inspect = sub.add_parser(
        "inspect",
        help="check a data folder (one sub-folder per class) and report its health",
        description="Scan DATA_DIR, report usable images per class, skipped files with reasons, "
        "duplicates and near-duplicates (kept in one split; across classes: label conflicts), tiny, "
        "dark, bright, blank and blurred images, imbalance and image sizes. Exit code 0 when the "
        "folder is usable.",
    )
    inspect.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    add_scan_options(inspect)
    inspect.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="also write the stratified train/val/test split manifest (CSV) to FILE",
    )
    add_split_options(inspect)
    inspect.add_argument(
        "--label-issues",
        action="store_true",
        help="also list likely label errors, most likely first: each image judged by a linear probe on "
        "BACKBONE's features that never saw it (5-fold), confident learning (cleanlab); and the images "
        "unlike all others in those features (off-distribution)",
    )
    inspect.add_argument(
        "--backbone", metavar="NAME_OR_PATH", help="the backbone that judges (--label-issues)"
    )
    inspect.add_argument(
        "--weights", default="imagenet", help="its weights (imagenet, none, or a file; default imagenet)"
    )
    inspect.add_argument("--image-size", type=int, metavar="N", help="input size (default: the backbone's)")
    inspect.set_defaults(handler=run_inspect)

    backbones = sub.add_parser("backbones", help="list the Keras Applications (or KerasHub) backbones")
    backbones.add_argument("--json", action="store_true", help="print a JSON list")
    backbones.add_argument(
        "--kerashub",
        action="store_true",
        help="list the KerasHub vision presets instead (ViT, DINOv2, …; needs tlstudio[kerashub])",
    )
    backbones.set_defaults(handler=run_backbones)
    add_weights_command(sub)
    devices.add_parser(sub)

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
        help="a Keras Applications name (see `tlstudio backbones`), a KerasHub preset "
        "(kerashub:NAME, see `tlstudio backbones --kerashub`, or a preset folder), a .keras/.h5 model "
        "file, or a SavedModel folder",
    )
    train.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K-fold cross-validation: K runs into RUN_DIR/fold-N, each fold the test split once; prints "
        "the mean ± sd of the test accuracies and a pooled 95%% interval (cross_validation.json)",
    )
    train.add_argument(
        "--json-summary", action="store_true", help="with --folds: also print the summary as JSON"
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue an interrupted run (killed, out of disk…) from its last finished epoch, in its "
        "folder, with its settings and split",
    )
    train.add_argument(
        "--out",
        type=Path,
        metavar="RUN_DIR",
        help="the run folder to write (with --project: a new folder in the project's runs)",
    )
    add_training_options(train)
    add_split_options(train)
    train.set_defaults(handler=run_train)

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
    add_training_options(compare)
    add_split_options(compare)
    compare.set_defaults(handler=run_compare)

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
    runs.add_argument(
        "--tensorboard",
        action="store_true",
        help="open TensorBoard on the runs' event files (RUN/tensorboard; needs the tensorboard package)",
    )
    runs.set_defaults(handler=run_runs)

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
    evaluate.set_defaults(handler=run_evaluate)

    predict = sub.add_parser("predict", help="classify image files with an exported model")
    predict.add_argument("model", metavar="MODEL", type=Path, help="a SavedModel folder or a run folder")
    predict.add_argument("images", metavar="IMAGE", nargs="+", type=Path)
    predict.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per image (3)")
    predict.add_argument("--json", action="store_true", help="print a JSON list")
    predict.set_defaults(handler=run_predict)

    export.add_parser(sub)
    suggest.add_parser(sub)
    rank.add_parser(sub)
    auto.add_parser(sub)
    lr_find.add_parser(sub)
    sweep.add_parser(sub)

    gui = sub.add_parser("gui", help="open the desktop app (the same as `tlstudio` without a command)")
    gui.add_argument("project", nargs="?", type=Path, help="a project file to open")
    gui.set_defaults(handler=run_gui)

    demo = sub.add_parser("demo", help="inspect, train and export on the bundled sample dataset")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        metavar="DIR",
        help="the run folder (default: runs/demo)",
    )
    demo.set_defaults(handler=run_demo)
    return parser


# what the user's own paths cause (exit 2, bad input); other OSErrors (a full disk) exit 1
PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        return run_desktop_entry(install=args.install_desktop_entry)
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
    except OSError as err:  # a path given that cannot be read or written: one line, not a traceback
        where = f": {err.filename}" if err.filename else ""
        print(f"tlstudio {args.command}: {err.strerror or err}{where}", file=sys.stderr)
        return 2 if isinstance(err, PATH_ERRORS) else 1
