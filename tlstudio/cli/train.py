"""`tlstudio train`: a run from a data folder or a project file."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from tlstudio.cli.common import fail, quiet_tensorflow
from tlstudio.cli.options import settings_from_args


def run_train(args: argparse.Namespace) -> int:
    if args.project is not None:
        return train_project(args)
    if args.data_dir is None or args.backbone is None or args.out is None:
        return fail("train", "DATA_DIR, --backbone and --out are required (or give --project FILE)", 2)
    if not args.data_dir.is_dir():
        return fail("train", f"{args.data_dir} is not a folder", 2)
    quiet_tensorflow()
    try:
        settings = settings_from_args(args)
    except ValueError as err:
        return fail("train", str(err), 2)
    return run_training(settings, args.data_dir, args.out, args.manifest)


def train_project(args: argparse.Namespace) -> int:
    from tlstudio.core.project import Project

    try:
        project = Project.load(args.project)
    except ValueError as err:
        return fail("train", str(err), 2)
    if not project.data_dir or not Path(project.data_dir).is_dir():
        return fail("train", f"the project's data folder {project.data_dir} is not there", 2)
    if not project.settings.backbone:
        return fail("train", "the project has no backbone chosen yet", 2)
    quiet_tensorflow()
    settings = (
        project.settings if args.strategy == "default" else project.settings.but(strategy=args.strategy)
    )
    out = args.out or project.new_run_dir()
    manifest = project.manifest_path if project.manifest_path and project.manifest_path.is_file() else None
    code, result = run_training(settings, Path(project.data_dir), out, manifest, with_result=True)
    if result is not None and result.primary:
        project = Project.load(args.project)  # the app may have saved meanwhile: add to the latest
        project.record_run(out, result.status, result.metrics)
        project.save()
    return code


def run_training(settings, data_dir: Path, out: Path, manifest: Path | None, with_result: bool = False):
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
