"""`tlstudio weights NAME`: fetch a backbone's ImageNet weights into Keras' cache, or put a local
copy there (`--from FILE`), with a progress bar; Ctrl+C keeps the part and the next run resumes."""

from __future__ import annotations

import argparse
import threading

from tlstudio.cli.common import fail, quiet_tensorflow


def add_parser(sub) -> None:
    """Register ``weights``."""
    p = sub.add_parser(
        "weights",
        help="download a backbone's ImageNet weights (resumable, checked), or install a local copy",
        description="Fetch the ImageNet weights file Keras uses for NAME into KERAS_HOME/models "
        "(~/.keras/models), checked against the hash Keras ships. Interrupted downloads resume. "
        "Offline: download the file elsewhere (the URL is printed) and give it with --from FILE.",
    )
    p.add_argument("name", metavar="NAME", help="a Keras Applications name (see `tlstudio backbones`)")
    p.add_argument("--from", dest="source", metavar="FILE", help="install this local copy instead")
    p.add_argument("--image-size", type=int, default=None, metavar="N", help="the size you will train at")
    p.add_argument("--url", action="store_true", help="only print the file's URL and where it goes")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object (name, url, path, check, status)"
    )


def run(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from tlstudio.core.backbone.weights import WeightsError, download, imagenet_weights_file, install_local

    try:
        weights = imagenet_weights_file(args.name, args.image_size)
    except WeightsError as err:
        return fail("weights", str(err), 2)
    if args.url:
        status = ("cached" if weights.is_cached() else "not fetched") if args.json else "url"
        return said(args, weights, status, f"{weights.url}\n->")
    try:
        if args.source:
            path = install_local(weights, args.source)
            return said(args, weights, "installed", "Installed", path)
        if weights.is_cached():
            return said(args, weights, "cached", "Already there:")
        stop = threading.Event()
        columns = (
            TextColumn("{task.description}", markup=False),  # a file name, never markup
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        console = Console(stderr=True) if args.json else None  # (stdout: the JSON alone)
        with Progress(*columns, transient=False, console=console) as bar:
            task = bar.add_task(weights.name, total=None)
            try:
                path = download(
                    weights, progress=lambda n, total: bar.update(task, completed=n, total=total), stop=stop
                )
            except KeyboardInterrupt:
                stop.set()
                return fail(
                    "weights", f"cancelled; run the same command again to resume ({weights.part})", 130
                )
    except WeightsError as err:
        return fail("weights", str(err), 1)
    return said(args, weights, "downloaded", "Saved", path)


def said(args: argparse.Namespace, weights, status: str, words: str, path=None) -> int:
    """Print the outcome, a line or (``--json``) one object; returns the exit code, 0.

    Args:
        args: the parsed arguments (``json``).
        weights: the ``WeightsFile``.
        status: ``downloaded``, ``installed``, ``cached``, or with ``--url`` ``cached`` / ``not fetched``.
        words: the line's start, followed by the path (and the check when a file was written).
        path: where the file is (default: its place in the cache).
    """
    import json

    path = path or weights.path
    if args.json:
        record = {"name": weights.name, "url": weights.url, "path": str(path), "check": weights.check}
        print(json.dumps({**record, "status": status}))
    elif status in ("downloaded", "installed"):
        print(f"{words} {path} ({weights.check})")
    else:
        print(f"{words} {path}")
    return 0
