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


def run(args: argparse.Namespace) -> int:
    quiet_tensorflow()
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
        print(f"{weights.url}\n-> {weights.path}")
        return 0
    try:
        if args.source:
            path = install_local(weights, args.source)
            print(f"Installed {path} ({weights.check})")
            return 0
        if weights.is_cached():
            print(f"Already there: {weights.path}")
            return 0
        stop = threading.Event()
        columns = (
            TextColumn("{task.description}", markup=False),  # a file name, never markup
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False) as bar:
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
    print(f"Saved {path} ({weights.check})")
    return 0
