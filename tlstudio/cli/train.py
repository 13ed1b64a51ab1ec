"""`tlstudio train`: a run from a data folder or a project file."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from tlstudio.cli.common import data_problem, fail, quiet_tensorflow
from tlstudio.cli.options import (
    DATA_HELP,
    add_split_options,
    add_training_options,
    image_size_problem,
    option_defaults,
    settings_from_args,
)


def add_parser(sub) -> None:
    """Register ``train``."""
    p = sub.add_parser(
        "train",
        help="train a classifier on DATA_DIR and export it",
        description="Train with the two-phase recipe (frozen backbone + new head, then the top blocks "
        "unfrozen at a 10x lower learning rate), early stopping on validation loss with the best "
        "weights restored, then export a verified SavedModel into RUN_DIR/saved_model.",
    )
    p.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        type=Path,
        nargs="?",
        help=DATA_HELP + " (not needed with --project)",
    )
    p.add_argument(
        "--project",
        type=Path,
        metavar="FILE",
        help="run a project file saved by the desktop app (its data, split and settings)",
    )
    p.add_argument(
        "--backbone",
        metavar="NAME_OR_PATH",
        help="a Keras Applications name (see `tlstudio backbones`), a KerasHub preset "
        "(kerashub:NAME, see `tlstudio backbones --kerashub`, or a preset folder), a .keras/.h5 model "
        "file, or a SavedModel folder",
    )
    p.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K-fold cross-validation: K runs into RUN_DIR/fold-N, each fold the test split once; prints "
        "the mean ± sd of the test accuracies and a pooled 95%% interval (multi-label data: of the test "
        "macro mAP, with a bootstrap 95%% interval of the mean) (cross_validation.json)",
    )
    p.add_argument("--json-summary", action="store_true", help="with --folds: also print the summary as JSON")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the outcome as one JSON object on stdout (status, run folder, export, metrics; with "
        "--folds the summary), the progress staying on stderr",
    )
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue an interrupted run (killed, out of disk…) from its last finished epoch, in its "
        "folder, with its settings and split",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="RUN_DIR",
        help="the run folder to write (with --project: a new folder in the project's runs)",
    )
    add_training_options(p)
    add_split_options(p)


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        return resume_run(args)
    if args.project is not None:
        return train_project(args)
    if args.data_dir is None or args.backbone is None or args.out is None:
        return fail("train", "DATA_DIR, --backbone and --out are required (or give --project FILE)", 2)
    if (why := data_problem(args.data_dir)) is not None:
        return fail("train", why, 2)
    if args.manifest is not None and not args.manifest.is_file():
        return fail("train", f"the split {args.manifest} is not there (a run's manifest.csv)", 2)
    if args.folds is not None and args.folds < 2:  # before the run folder is claimed
        return fail("train", "--folds needs at least 2 folds", 2)
    try:
        settings = settings_from_args(args)
    except ValueError as err:
        return fail("train", str(err), 2)
    quiet_tensorflow()
    if (why := settings_problem(settings)) is not None:  # before any folder
        return fail("train", why, 2)
    if args.folds is not None:
        return run_folds(args, settings)
    return run_training(
        settings, args.data_dir, args.out, args.manifest, overwrite=args.overwrite, as_json=args.json
    )


def settings_problem(settings) -> str | None:
    """Why these settings cannot run on their backbone, asked before any folder is read: the image
    size, ``--peft lora`` and ``--probe-features last4`` (``train``, ``train --project``, ``compare``).

    Returns:
        A one-line reason, or None.
    """
    from tlstudio.core.backbone.block_tokens import probe_features_problem

    return image_size_problem(settings) or peft_problem(settings) or probe_features_problem(settings)


def peft_problem(settings) -> str | None:
    """Why ``--peft lora`` cannot run on the backbone (a CNN has no projection to wrap), asked of its
    spec before any work; None where it can, or where only building the backbone tells."""
    if settings.peft != "lora":
        return None
    from tlstudio.core.backbone.peft import lora_refusal
    from tlstudio.core.backbone.registry import resolve_backbone

    return lora_refusal(resolve_backbone(settings.backbone))


# `train`'s own options that --project and --resume also refuse (the others: ``option_defaults``)
TRAIN_ONLY_DEFAULTS: dict[str, object] = {"folds": None, "json_summary": False}


def given_options(args: argparse.Namespace, allowed: set[str]) -> list[str]:
    """The training options given on the command line (different from their defaults), as --names.

    Args:
        args: `train`'s parsed arguments.
        allowed: option names (argparse dests) that may differ.

    Returns:
        The other options that differ from their defaults (``core.settings``), sorted, e.g. ``["--epochs"]``.
    """
    defaults = {**option_defaults(), **TRAIN_ONLY_DEFAULTS}
    return sorted(
        "--" + k.replace("_", "-")
        for k, default in defaults.items()
        if k not in allowed and getattr(args, k, default) != default
    )


def run_folds(args: argparse.Namespace, settings) -> int:
    """``--folds K``: K runs, each with another fold as its test split; mean ± sd and an interval."""
    import json

    from tlstudio.core.data.split import Manifest
    from tlstudio.core.results.run_folder import RunFolderError, claim
    from tlstudio.core.training.cross_validation import cross_validate, describe
    from tlstudio.progress import ProgressPrinter

    try:
        lock = claim(args.out, overwrite=args.overwrite)  # the folds' parent: one owner too
        lock.release()
        manifest = Manifest.load(args.manifest) if args.manifest else None
        summary = cross_validate(
            settings, args.data_dir, args.out, args.folds, manifest=manifest, on_event=ProgressPrinter()
        )
    except (RunFolderError, ValueError) as err:
        return fail("train", str(err), 2)
    print(describe(summary), file=sys.stderr if args.json else sys.stdout)
    if args.json_summary or args.json:
        print(json.dumps(summary, indent=2))
    return 0 if all(f["status"] == "completed" for f in summary["folds"]) else 1


def resume_run(args: argparse.Namespace) -> int:
    """Continue an interrupted run in its own folder, with its own settings and split."""
    import json

    from tlstudio.core.results import run_folder as files

    ignored = given_options(args, set()) + [
        name for name, value in (("--backbone", args.backbone), ("--out", args.out)) if value is not None
    ]
    if ignored:
        return fail(
            "train",
            f"--resume continues with the run's own settings, in its own folder; remove {', '.join(ignored)}",
            2,
        )
    from tlstudio.core.results.run_folder import run_status
    from tlstudio.core.settings import TrainSettings

    run = args.resume
    if not (run / files.SETTINGS).is_file() or not (run / files.MANIFEST).is_file():
        return fail("train", f"{run} is not a run folder (settings.json and manifest.csv are missing)", 2)
    status = run_status(run).get("status", "unknown")
    if status in ("completed", "failed_to_learn"):
        return fail("train", f"{run} has already {status.replace('_', ' ')}: nothing to resume", 2)
    try:
        settings = TrainSettings.from_dict(json.loads((run / files.SETTINGS).read_text(encoding="utf-8")))
    except (ValueError, TypeError, AttributeError) as err:  # (broken JSON, a list, a non-UTF-8 file)
        return fail("train", f"{run}/settings.json: {err}", 2)
    except RecursionError:
        return fail("train", f"{run}/settings.json is nested too deeply to be a run's settings", 2)
    except OSError as err:
        return fail("train", f"{run}/settings.json cannot be read: {err.strerror or err}", 2)
    recorded = run_status(run).get("data_dir")  # ({} when run.json is missing or unreadable)
    if args.data_dir is None and not recorded:
        return fail(
            "train", f"{run}/{files.RUN_JSON} is missing or unreadable: give the data folder as DATA_DIR", 2
        )
    data = args.data_dir or Path(recorded)
    if not data.is_dir():
        return fail("train", f"the run's data folder {data} is not there: give it as DATA_DIR", 2)
    from tlstudio.core.training.resume import CHECKING, refuse_resume

    def announce(event) -> None:
        if event.done == 0:
            print(f"{CHECKING[0].upper()}{CHECKING[1:]} ({event.total} files)…", file=sys.stderr, flush=True)

    if (why := refuse_resume(run, data, announce)) is not None:  # before TensorFlow loads (the session
        return fail("train", f"cannot resume {run}: {why}", 2)  # checks again: the app's Resume too)
    quiet_tensorflow()
    print(f"Resuming {run} (was {status})", file=sys.stderr)
    return run_training(settings, data, run, None, resume=True, as_json=args.json)


def train_project(args: argparse.Namespace) -> int:
    from tlstudio.core.project import Project

    try:
        project = Project.load(args.project)
    except ValueError as err:
        return fail("train", str(err), 2)
    if not project.data_dir or data_problem(project.data_dir) is not None:
        return fail("train", f"the project's data {project.data_dir} is not there or not usable", 2)
    if not project.settings.backbone:
        return fail("train", "the project has no backbone chosen yet", 2)
    ignored = given_options(args, {"strategy", "overwrite", "device"}) + [
        name
        for name, value in (("DATA_DIR", args.data_dir), ("--backbone", args.backbone))
        if value is not None
    ]
    if ignored:
        return fail(
            "train",
            f"--project trains with the project's own settings (change them in the app or the file); "
            f"remove {', '.join(ignored)}",
            2,
        )
    quiet_tensorflow()
    if (why := settings_problem(project.settings)) is not None:
        return fail("train", f"{args.project}: {why}", 2)
    settings = project.settings  # where it runs is this machine's business: --strategy and --device
    if args.strategy != "default":
        settings = settings.but(strategy=args.strategy)
    if args.device != "auto":
        settings = settings.but(device=args.device)
    out = args.out or project.new_run_dir()
    manifest = project.manifest_path if project.manifest_path and project.manifest_path.is_file() else None
    records = records_the_run(settings.strategy)
    if records:  # recorded before it starts: a killed run stays listed
        project.record_run(out, "running", {})
        project.save()
    code, result = run_training(
        settings,
        Path(project.data_dir),
        out,
        manifest,
        with_result=True,
        overwrite=args.overwrite,
        as_json=args.json,
    )
    if not records:  # another worker of a cluster: the chief keeps the project
        return code
    project = Project.load(args.project)  # the app may have saved meanwhile: update the latest
    if result is not None and result.primary:
        project.record_run(out, result.status, result.metrics)
    elif not Path(out).is_dir():  # refused before it made its folder: nothing to list
        project.forget_run(out)
    project.save()
    return code


def records_the_run(strategy: str) -> bool:
    """Whether this process writes the project: always, but on a multi-worker cluster only the chief
    (task "chief", else worker 0 — as ``distribution.is_chief`` decides, read here from TF_CONFIG
    before TensorFlow loads). Two workers writing one project file lost the chief's last word."""
    import json
    import os

    if strategy != "multiworker":
        return True
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task, cluster = config.get("task") or {}, config.get("cluster") or {}
    except (ValueError, AttributeError):
        return True  # no readable cluster: the session says what is wrong
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index") == 0 and "chief" not in cluster


def run_training(
    settings,
    data_dir: Path,
    out: Path,
    manifest: Path | None,
    with_result: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    as_json: bool = False,
):
    """Run one session with progress on the terminal; Ctrl-C or SIGTERM stop it after the current batch
    (the best weights so far are kept and exported), a second one aborts."""
    import signal
    import threading

    from tlstudio.core.training.session import TrainingSession
    from tlstudio.progress import ProgressPrinter

    stop = threading.Event()

    def request_stop(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        print(
            f"\n{name}: stopping (at the next layer while a first batch is being built, else after "
            "this batch; Ctrl-C again to abort)…",
            file=sys.stderr,
        )
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    if settings.strategy == "multiworker":
        from tlstudio.core.training.distribution import MultiWorkerError, joining_message, read_tf_config

        with contextlib.suppress(MultiWorkerError):  # the session says what is wrong
            print(joining_message(read_tf_config()), file=sys.stderr, flush=True)
    try:
        session = TrainingSession(
            settings,
            data_dir,
            out,
            manifest=manifest,
            on_event=ProgressPrinter(),
            stop=stop,
            overwrite=overwrite,
            resume=resume,
        )
        result = session.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = {"completed": 0, "stopped": 130, "failed_to_learn": 3}.get(result.status, 1)
    if as_json:
        print(outcome_json(result))
    return (code, result) if with_result else code


def outcome_json(result) -> str:
    """A run's outcome as one JSON object: what `train --json` prints.

    Args:
        result: the session's ``RunResult``.

    Returns:
        ``{"status", "run_dir", "export_dir", "error", "metrics"}`` as JSON text.
    """
    import json

    return json.dumps(
        {
            "status": result.status,
            "run_dir": str(result.run_dir),
            "export_dir": str(result.export_dir) if result.export_dir else None,
            "error": result.error,
            "metrics": result.metrics,
        },
        default=lambda value: value.item() if hasattr(value, "item") else str(value),  # numpy scalars
    )
