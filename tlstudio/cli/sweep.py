"""`tlstudio sweep`: a study of many runs on Optuna, on one machine or on several sharing a storage."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from tlstudio.cli.common import fail, folder_only_problem


def add_parser(sub) -> None:
    """Register ``sweep``."""
    from tlstudio.cli.options import add_split_options, add_training_options
    from tlstudio.core.settings import SWEEP_HEARTBEAT_S, SWEEP_STUDY, SWEEP_TRIALS

    p = sub.add_parser(
        "sweep",
        help="try many backbones and recipes as an Optuna study, on this machine or on several",
        description="Runs TRIALS ordinary runs, each in its own process and its own folder under OUT, "
        "chosen by Optuna from a search space (default: the backbone, the blocks fine-tuned, the learning "
        "rate, the augmentation strength and the image size where the backbone allows; --space FILE "
        "replaces it). Every trial uses the same split and is scored on its validation images; the test "
        "images are scored once, for the best trial, after the study. Run the same command on several "
        "machines (or once per GPU with --device) with a shared --storage to share the work: the study "
        "ends with exactly TRIALS complete trials, and the trial of a worker that died is run again.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="the folder for the trials' runs")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="the study's database: postgresql://USER@HOST:PORT/DB for several machines (default: SQLite "
        "in DIR/sweep.db, one machine)",
    )
    p.add_argument("--study", default=SWEEP_STUDY, metavar="NAME", help=f"the study's name ({SWEEP_STUDY})")
    p.add_argument(
        "--trials",
        type=int,
        default=SWEEP_TRIALS,
        metavar="N",
        help=f"complete trials in the study, all workers together ({SWEEP_TRIALS})",
    )
    p.add_argument("--space", type=Path, metavar="FILE", help="the search space as JSON (see docs/scale.md)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--backbone", metavar="NAME_OR_PATH", help="one backbone for every trial")
    which.add_argument(
        "--candidates",
        metavar="A,B,...",
        help="the backbones to choose from (default: those at hand that `tlstudio rank` cannot tell apart)",
    )
    p.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="score each trial by K-fold cross-validation over the training and validation images (the "
        "test split still left out) instead of on the validation split; the best is then trained once "
        "more on the split, exported and scored on the test split",
    )
    p.add_argument(
        "--objective",
        choices=["accuracy", "loss"],
        default="accuracy",
        help="what the study optimises, on the validation split (accuracy)",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        default=SWEEP_HEARTBEAT_S,
        metavar="S",
        help=f"a worker says it is alive every S seconds; a trial silent for 3×S is failed and run again "
        f"({SWEEP_HEARTBEAT_S})",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads per trial (default: the machine's cores; with K workers on one machine, cores/K)",
    )
    p.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="every trial's training settings as a settings.json (a run's, or the app's project's) "
        "instead of the training and split options",
    )
    p.add_argument("--json", action="store_true", help="print sweep.json's content at the end")
    add_training_options(p)
    add_split_options(p)


def run(args: argparse.Namespace) -> int:
    """Check everything before any work, join or start the study, run trials, then sum up."""
    problem = argument_problem(args)
    if problem:
        return fail("sweep", problem, 2)
    from tlstudio.cli.options import settings_from_args
    from tlstudio.core.studies.space import SpaceError, default_space, load_space, parse_space
    from tlstudio.core.studies.summary import summarize
    from tlstudio.core.studies.sweep import (
        SweepConfig,
        SweepError,
        open_study,
        recorded_backbones,
        run_worker,
        sqlite_url,
    )

    names = candidate_names(args)
    try:
        base = settings_from_args(args, backbone=(names or ["(chosen per trial)"])[0])
        if args.settings is not None:
            base = settings_file(args.settings).but(backbone=base.backbone, device=args.device)
        space = load_space(args.space, base) if args.space else None
    except (ValueError, SpaceError) as err:
        return fail("sweep", str(err), 2)
    if space is not None and space.get("backbone") is not None and names:
        return fail("sweep", "--space names the backbones: leave out --backbone/--candidates", 2)
    try:
        manifest = sweep_manifest(args, base)
    except ValueError as err:
        return fail("sweep", str(err), 2)
    if space is None or space.get("backbone") is None:
        if not names:  # the study's own when it exists (joining it), else rank's ties at hand
            url = args.storage or sqlite_url(args.out)
            names = recorded_backbones(url, args.study) or tied_candidates(args, base)
            if isinstance(names, str):
                return fail("sweep", names, 2)
        if (why := candidates_problem(names, base)) is not None:
            return fail("sweep", why, 2)
        if space is None:
            space = default_space(names, base, image_sizes(names))
        else:
            space = parse_space({"backbone": {"choices": names}} | space.to_dict(), base)
    elif (why := candidates_problem(space.backbones(), base)) is not None:
        return fail("sweep", why, 2)
    base = base.but(backbone=space.backbones()[0])
    config = SweepConfig(
        data_dir=args.data_dir,
        out=args.out,
        base=base.but(device="auto"),
        space=space,
        manifest_fingerprint=manifest.fingerprint(),
        trials=args.trials,
        study=args.study,
        storage=args.storage,
        objective=args.objective,
        heartbeat=args.heartbeat,
        threads=args.threads,
        folds=args.folds or 0,
        machine={"device": args.device},
    )
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    try:
        study = open_study(config)
    except SweepError as err:
        return fail("sweep", str(err), 2)
    say(f"Study '{args.study}' ({args.trials} trials) on {config.url.split(':')[0]}; runs in {args.out}")
    signal.signal(signal.SIGTERM, interrupt)  # as Ctrl-C: the trial fails, is queued again, and its run ends
    try:
        done = run_worker(study, config, say)
        summary = summarize(study, config, say)
    except SweepError as err:
        return fail("sweep", str(err), 1)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    say(f"This worker completed {done} trial(s).")
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(describe(summary))
    test = summary["best"]["test"]
    return 1 if test and "error" in test else 0


def interrupt(signum, frame) -> None:
    """SIGTERM handled as Ctrl-C (``KeyboardInterrupt``: exit 130)."""
    raise KeyboardInterrupt


def argument_problem(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot start a sweep, before anything is read or written."""
    if (why := folder_only_problem(args.data_dir, "sweep")) is not None:
        return why
    if args.out.exists() and not args.out.is_dir():
        return f"{args.out} is a file, not a folder"
    if args.out.is_dir() and (strange := [p.name for p in args.out.iterdir() if not sweep_file(p.name)]):
        return f"{args.out} holds other files ({strange[0]}): choose a new --out, or this sweep's folder"
    if args.folds is not None and args.folds < 2:
        return "--folds needs at least 2 folds"
    if args.trials < 1:
        return "--trials must be at least 1"
    if args.heartbeat < 1:
        return "--heartbeat must be at least 1 second"
    if args.threads is not None and args.threads < 1:
        return "--threads must be at least 1"
    if args.overwrite:
        return "--overwrite is not for sweeps: every trial gets a new folder (a new --out starts afresh)"
    if args.strategy != "default":
        return "--strategy: a trial runs on one device (start one worker per GPU with --device gpu:N)"
    if args.settings is not None and (why := settings_problem(args)):
        return why
    if args.manifest is not None and not args.manifest.is_file():
        return f"the split {args.manifest} is not there (a run's manifest.csv)"
    if args.storage is not None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(args.storage)
        except ArgumentError:
            return f"--storage {args.storage!r} is not a database URL (postgresql://USER@HOST:PORT/DB)"
    return None


def settings_problem(args: argparse.Namespace) -> str | None:
    """Why --settings cannot be used: no such file, or training options given beside it."""
    from tlstudio.cli.options import option_defaults

    if not args.settings.is_file():
        return f"--settings {args.settings} is not a file"
    given = [
        k for k, v in option_defaults().items() if k not in ("device", "manifest") and getattr(args, k) != v
    ]
    if given:
        return f"--settings gives the training settings: leave out --{given[0].replace('_', '-')}"
    return None


def settings_file(path: Path):
    """The TrainSettings of a settings.json (ValueError naming what is wrong)."""
    from tlstudio.core.settings import TrainSettings

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"--settings {path}: not a settings.json ({err})") from None
    settings = TrainSettings.from_dict(data)
    if settings.strategy != "default":
        raise ValueError("--settings: a trial runs on one device (its strategy must be default)")
    return settings


def sweep_file(name: str) -> bool:
    """Whether a name in a sweep's folder is the sweep's own (another worker may be writing it)."""
    from tlstudio.core.studies.board import SNAPSHOT, SWEEP_JSON
    from tlstudio.core.studies.sweep import DB_FILE, LOGS, MANIFEST_FILE
    from tlstudio.core.studies.workers import SETTINGS_FILE

    ours = (LOGS, MANIFEST_FILE, SNAPSHOT, SWEEP_JSON, SETTINGS_FILE)
    return name in ours or name.startswith((".tmp-", "trial-", DB_FILE))  # (SQLite's journal too)


def candidate_names(args: argparse.Namespace) -> list[str]:
    """--backbone or --candidates as a list (empty: neither)."""
    if args.backbone:
        return [args.backbone]
    if args.candidates:
        return list(dict.fromkeys(c.strip() for c in args.candidates.split(",") if c.strip()))
    return []


def sweep_manifest(args: argparse.Namespace, base):
    """The split every trial uses: --manifest, the sweep folder's, or made now; saved in the folder.

    Raises:
        ValueError: the data is not usable, it has no validation split, or the folder's split differs.
    """
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import Manifest, SplitConfig, make_split
    from tlstudio.core.studies.sweep import MANIFEST_FILE

    if args.manifest is not None:
        manifest = Manifest.load(args.manifest)
    else:
        report = inspect_folder(args.data_dir)
        if not report.usable:
            raise ValueError(f"{args.data_dir} is not usable: {report.problem}")
        manifest = make_split(report.images, SplitConfig.of(base))
    if not manifest.subset("val"):
        raise ValueError("trials are scored on the validation split, which is empty: raise --val")
    kept = args.out / MANIFEST_FILE
    if kept.is_file() and Manifest.load(kept).fingerprint() != manifest.fingerprint():
        raise ValueError(f"{kept} is another split: this folder holds another sweep (choose another --out)")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest.save(kept)
    return manifest


def candidates_problem(names: list[str], base) -> str | None:
    """Every bad backbone at once, in one line, before any trial (as `tlstudio rank` checks them)."""
    from tlstudio.core.training.rank_check import candidate_problems, problem_line

    problems = candidate_problems(names, weights=base.weights, image_size=base.image_size)
    return "; ".join(problem_line(c, r) for c, r in problems) or None


def image_sizes(names: list[str]):
    """The default space's image sizes, when every backbone takes any size."""
    from tlstudio.core.backbone.registry import resolve_backbone
    from tlstudio.core.studies.space import sizes_for

    return sizes_for([resolve_backbone(n) for n in names])


def tied_candidates(args: argparse.Namespace, base) -> list[str] | str:
    """The backbones at hand (offline) that `tlstudio rank` cannot tell from the best on this data;
    a reason (str) when there are none."""
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import SplitConfig
    from tlstudio.core.training.auto import available_candidates
    from tlstudio.core.training.ranking import rank_backbones

    at_hand = available_candidates()
    if len(at_hand) < 2:
        return at_hand or "no backbone at hand without network: give --backbone or --candidates"
    print(f"Ranking the backbones at hand: {', '.join(at_hand)}…", file=sys.stderr, flush=True)
    ranked = rank_backbones(inspect_folder(args.data_dir), at_hand, split=SplitConfig.of(base))
    return [r.backbone for r in ranked if r.error is None and r.tied_with_best]


def describe(summary: dict) -> str:
    """The trials, the best with its test score, and the ties, as text."""
    from tlstudio.core.studies.space import show_values

    lines = [f"{'#':>4}  {'state':<9}{'value':>8}  {'val acc [95%]':<20}  params"]
    for r in summary["trials_table"]:
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        interval = r.get("val_accuracy_interval")
        acc = (
            f"{r['val_accuracy']:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"
            if interval and r["val_accuracy"] is not None
            else ""
        )
        mark = "=" if r.get("tied_with_best") else " "
        params = show_values(r["params"])
        lines.append(f"{mark}{r['number']:>3}  {r['state']:<9}{value:>8}  {acc:<20}  {params}")
    best = summary["best"]
    lines.append(
        f"\nBest: trial {best['trial']} ({summary['objective']} {best['value']:.4f}), run {best['run_dir']}"
    )
    test = best["test"]
    if test and "error" not in test:
        lines.append(
            f"  test accuracy {test['test_accuracy']:.3f} [{test['test_accuracy_low']:.2f}, "
            f"{test['test_accuracy_high']:.2f}] on {test['test_images']} images (scored once, after the "
            "study)"
        )
    elif test:
        lines.append(f"  {test['error']}")
    ties = summary["tied_with_best"]
    lines.append(
        f"  = the validation images cannot tell trials {', '.join(map(str, ties))} from the best"
        if ties
        else "  no other trial is tied with it on the validation images"
    )
    lines.append(
        f"{summary['complete']} complete, {summary['failed']} failed, {summary['retried']} retried; "
        f"export the best with `tlstudio export {best['export_run_dir']}`"
    )
    return "\n".join(lines)
