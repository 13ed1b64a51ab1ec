"""`tlstudio demo`: the whole job on the bundled sample data."""

from __future__ import annotations

import argparse
from pathlib import Path

from tlstudio.cli.common import fail, quiet_tensorflow
from tlstudio.cli.inspect import run as run_inspect
from tlstudio.cli.train import run_training
from tlstudio.core.settings import SEED, TEST_FRACTION, VAL_FRACTION


def add_parser(sub) -> None:
    """Register ``demo``."""
    p = sub.add_parser("demo", help="inspect, train and export on the bundled sample dataset")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        metavar="DIR",
        help="the run folder (default: runs/demo)",
    )


def run(args: argparse.Namespace) -> int:
    import tempfile

    from tlstudio.core.results import run_folder as files

    out = Path(args.out)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / files.RUN_JSON).is_file())
    ):  # a new demo replaces the last demo's run, never a folder of someone's files
        return fail("demo", f"{out} holds files that are not a run: choose another --out", 2)
    with tempfile.TemporaryDirectory(prefix="tlstudio-demo-") as split_dir:
        return _demo(args, Path(split_dir))


def backbone_folder(out: Path) -> Path:
    """Where the demo keeps its backbone: beside the run folder ``out`` (``runs/demo-backbone/`` for
    ``runs/demo``), not in it (claiming a run folder empties it: it holds one run's files only) nor in
    the system's temp folder (gone later, while the run's settings still name the file)."""
    out = Path(out).resolve()
    return out.with_name(f"{out.name}-backbone")


def _demo(args: argparse.Namespace, split_dir: Path) -> int:
    from tlstudio.core.results import run_folder as files
    from tlstudio.package_data import sample_dataset

    data = sample_dataset()
    print(f"TL Studio demo on the bundled sample dataset: {data}\n")
    # the split goes beside, not into, the run folder (the run keeps its own copy of it)
    manifest_path = split_dir / files.MANIFEST
    code = run_inspect(
        argparse.Namespace(
            data_dir=data,
            json=False,
            deep=False,
            manifest=manifest_path,
            val=VAL_FRACTION,
            test=TEST_FRACTION,
            seed=SEED,
        )
    )
    if code:
        return code
    print("\nTraining a small CNN from scratch on it (the backbone is built here; no download)…\n")
    quiet_tensorflow()
    from tlstudio.core.data.sample import sample_settings

    settings = sample_settings(demo_backbone(backbone_folder(args.out)))
    code = run_training(
        settings, data, args.out, manifest_path, overwrite=True
    )  # a new demo replaces the last
    if code == 0:
        print(f"\nTry: tlstudio predict {args.out} {next(iter(sorted(data.glob('3_*/*.png'))))}")
    return code


def demo_backbone(out: Path) -> Path:
    """The sample's small CNN backbone (built by the core)."""
    from tlstudio.core.data.sample import demo_backbone as build

    return build(out)
