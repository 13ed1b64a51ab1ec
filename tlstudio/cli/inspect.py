"""`tlstudio inspect`: the dataset doctor."""

from __future__ import annotations

import argparse
import json
import sys

from tlstudio.cli.common import fail, progress_printer


def run_inspect(args: argparse.Namespace) -> int:
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import SplitConfig, make_split

    if not args.data_dir.is_dir():
        return fail("inspect", f"{args.data_dir} is not a folder", 2)
    try:
        config = SplitConfig(args.val, args.test, args.seed)
    except ValueError as err:
        return fail("inspect", str(err), 2)
    progress = None if args.json or not sys.stderr.isatty() else progress_printer("Scanning")
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
        return fail("inspect", f"not usable: {report.problem}")
    return 0
