"""`tlstudio runs`: a project's run history."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlstudio.cli.common import fail, number


def add_parser(sub) -> None:
    """Register ``runs``."""
    p = sub.add_parser(
        "runs",
        help="list a project's runs, or compare two of them",
        description="List the runs of a project file (or of a folder of run folders) with their "
        "status, backbone, data hash and test results; --diff A B shows two runs side by side: "
        "the settings that differ, whether the data was the same, and every metric.",
    )
    p.add_argument("source", metavar="PROJECT_OR_FOLDER", type=Path)
    p.add_argument(
        "--diff", nargs=2, metavar=("A", "B"), help="two runs: numbers from the list or folder names"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="open TensorBoard on the runs' event files (RUN/tensorboard; needs the tensorboard package)",
    )


def run(args: argparse.Namespace) -> int:
    from tlstudio.core.project import Project
    from tlstudio.core.results import run_folder as files
    from tlstudio.core.results.run_history import compare_runs, load_run, project_runs
    from tlstudio.core.studies.board import is_sweep

    if args.tensorboard:
        return open_tensorboard(args.source)
    if not args.diff and is_sweep(args.source):  # a sweep's folder: its trials
        return list_trials(args.source, args.json)
    if args.source.is_file():
        try:
            records = project_runs(Project.load(args.source).runs)
        except ValueError as err:
            return fail("runs", str(err), 2)
    elif (args.source / files.RUN_JSON).is_file():  # one run folder
        records = [load_run(args.source)]
    elif args.source.is_dir():
        records = [load_run(d) for d in sorted(args.source.iterdir()) if (d / files.RUN_JSON).is_file()]
    else:
        return fail("runs", f"{args.source} is neither a project file nor a folder", 2)
    if not records:
        return fail("runs", f"no runs in {args.source}")
    if args.diff:
        by_key = {str(i): r for i, r in enumerate(records, start=1)} | {r.name: r for r in records}
        missing = [k for k in args.diff if k not in by_key]
        if missing:
            return fail("runs", f"no run {missing[0]} (give a number from the list or a folder name)", 2)
        result = compare_runs(by_key[args.diff[0]], by_key[args.diff[1]])
        if args.json:
            print(json.dumps(result, indent=2, default=str))
            return 0
        print(format_diff(result))
        return 0
    if args.json:
        print(json.dumps([vars(r) for r in records], indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", padding=(0, 1))
    for name, justify in (
        ("#", "right"),
        ("run", "left"),
        ("status", "left"),
        ("backbone", "left"),
        ("test acc", "right"),
        ("macro F1", "right"),
        ("data", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # names wrap, never cut
    for i, r in enumerate(records, start=1):
        cells = (
            str(i),
            r.name,
            r.status,
            Path(r.backbone).name,
            number(r.metrics.get("test_accuracy")),
            number(r.metrics.get("test_macro_f1")),
            (r.manifest_fingerprint or "?")[:10],
        )
        table.add_row(*(Text(c) for c in cells))  # folder and file names as they are, never markup
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def format_diff(result: dict[str, object]) -> str:
    """``compare_runs``'s result as text: the data, the test accuracies with their intervals and the
    verdict, the settings that differ (by the names the CLI and the app use), every metric."""
    a, b = result["runs"]
    same = {True: "yes", False: "NO", None: "unknown: a run's record is missing or unreadable"}
    width = max(len(a), len(b), 20)
    lines = [f"{a}  vs  {b}   (same data: {same[result['same_data']]})", ""]
    sa, sb = result["accuracy"]
    lines.append(
        f"  {'test accuracy':<40} {number(sa['accuracy']):>{width}}  {number(sb['accuracy']):>{width}}"
    )
    lines.append(f"  {'95% interval':<40} {_span(sa):>{width}}  {_span(sb):>{width}}")
    lines.append(f"  {'test images':<40} {sa['images'] or '—':>{width}}  {sb['images'] or '—':>{width}}")
    lines += ["", f"Verdict: {result['verdict']['text']}", ""]
    lines.append("Settings that differ:" if result["settings_diff"] else "Same settings.")
    for row in result["settings_diff"]:
        lines.append(f"  {row['option']:<40} {row[a]!s:>{width}}  {row[b]!s:>{width}}")
    lines += ["", "Metrics (best_epoch counted from 1):"]
    for row in result["metrics"]:
        lines.append(f"  {row['metric']:<40} {number(row[a]):>{width}}  {number(row[b]):>{width}}")
    return "\n".join(lines)


def _span(scored: dict[str, object]) -> str:
    low, high = scored["low"], scored["high"]
    return "—" if low is None or high is None else f"{low:.2f}–{high:.2f}"


def open_tensorboard(source: Path) -> int:
    """Start TensorBoard on the runs' event files (every run writes RUN/tensorboard/)."""
    import importlib.util
    import shlex
    import subprocess
    import sys

    from tlstudio.core.project import Project

    logdir = source
    if source.is_file():
        try:
            logdir = Project.load(source).runs_dir
        except ValueError as err:
            return fail("runs", str(err), 2)
    if not logdir.is_dir():
        return fail("runs", f"{logdir} is not a folder of runs", 2)
    if importlib.util.find_spec("tensorboard") is None:
        return fail(
            "runs",
            "TensorBoard is not installed: pip install tensorboard, then tensorboard --logdir "
            + shlex.quote(str(logdir)),  # a path with a space ("TL Studio") pastes as one argument
            1,
        )
    print(f"TensorBoard on {logdir} (Ctrl-C to stop)", file=sys.stderr)
    return subprocess.call([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)])


def list_trials(folder: Path, as_json: bool) -> int:
    """A sweep's trials as its workers last saw them (``trials.json``), with the summary's ties."""
    from tlstudio.core.studies.board import read_board
    from tlstudio.core.studies.space import show_values

    board = read_board(folder)
    if as_json:  # with Optuna's parameter importances of the complete trials
        from tlstudio.core.studies.insight import insight, study_from_snapshot

        study = study_from_snapshot(folder)
        found = None if isinstance(study, str) else insight(study)
        data = {
            "study": board.study,
            "finished": board.finished,
            "best": board.best["number"] if board.best else None,
            "importance": found.importance if found else None,
            "importance_note": found.reason if found else study,
            "trials": board.rows,
        }
        print(json.dumps(data, indent=2, default=str))
        return 0
    best = board.best["number"] if board.best else None
    print(f"{'#':>4}  {'state':<9}{'value':>8}  {'host':<12}  run / params")
    for r in board.rows:
        mark = "*" if r["number"] == best else "=" if r.get("tied_with_best") else " "
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        params = show_values(r["params"])
        run = Path(r["run_dir"]).name if r.get("run_dir") and r["state"] != "surplus" else ""
        host = (r.get("host") or "")[:12]
        print(f"{mark}{r['number']:>3}  {r['state']:<9}{value:>8}  {host:<12}  {run} {params}")
    if best is not None:
        done = "the best trial" if board.finished else "the best so far (the study is still running)"
        print(f"* {done}; = tied with it on the validation images (tlstudio sweep's summary)")
    return 0
