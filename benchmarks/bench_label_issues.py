"""Likely label errors against labels flipped on purpose: precision and recall of
``tlstudio inspect --label-issues`` on several tasks of different kinds.

Run:  python benchmarks/bench_label_issues.py [--flip 0.1] [--per-class 40] [--seeds 0,1]

Each task is a folder of images in classes that a small CNN (the "backbone", trained beforehand on
*other* classes of the same kind: the user's related pretrained model) has never seen. A share of the
images (``--flip``) is moved into another class folder at random. The label check then ranks likely
errors; with k = the number of flipped images:

- precision@k: the share of the first k entries that were flipped (random ranking: the flip rate);
  (with k entries and k flipped images, it is also the share of flipped images found in the first k);
- recall: the share of flipped images anywhere in the list, and the list's length.

Tasks: drawn shapes, printed digits (backbone trained on letters), textures, and the bundled real
handwritten digits (backbone trained on printed digits).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from factory import (  # noqa: E402
    GLYPHS_A,
    GLYPHS_B,
    SHAPES_A,
    SHAPES_C,
    TEXTURES_A,
    TEXTURES_B,
    make_drawn_dataset,
    pretrain_source_model,
)

TASKS = {  # name: (the backbone's classes, the task's classes or "digits": the bundled sample)
    "shapes": (SHAPES_A, SHAPES_C),
    "glyphs": (GLYPHS_A, GLYPHS_B),
    "textures": (TEXTURES_A, TEXTURES_B),
    "handwritten digits": (GLYPHS_B + tuple("56789"), "digits"),
}


def flip_labels(root: Path, share: float, seed: int) -> set[str]:
    """Move ``share`` of the images into another class folder; returns their new relative paths."""
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    images = sorted(p for p in root.glob("*/*") if p.is_file())
    chosen = rng.choice(len(images), size=round(share * len(images)), replace=False)
    flipped = set()
    for i in chosen:
        source = images[i]
        other = rng.choice([c for c in classes if c != source.parent.name])
        target = root / other / f"flipped_{source.parent.name}_{source.name}"
        source.rename(target)
        flipped.add(target.relative_to(root).as_posix())
    return flipped


def score(issues, flipped: set[str]) -> dict[str, float]:
    """precision@k and recall of a ranked issue list (k = the number flipped)."""
    k = len(flipped)
    listed = [i.path for i in issues]
    hits_k = sum(1 for p in listed[:k] if p in flipped)
    return {
        "flipped": k,
        "listed": len(listed),
        "precision_at_k": hits_k / k,
        "recall": sum(1 for p in listed if p in flipped) / k,
    }


def run_task(name: str, work: Path, flip: float, per_class: int, seed: int) -> dict[str, object]:
    """Build one task, flip labels, find the issues; the scores and the time taken."""
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.training.label_issues import find_label_issues
    from tlstudio.package_data import sample_dataset

    source, target = TASKS[name]
    folder = work / f"{name.replace(' ', '_')}-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    backbone, source_accuracy = pretrain_source_model(
        folder / "backbone.keras", source, per_class=200, epochs=6, seed=seed
    )
    data = folder / "data"
    if target == "digits":
        shutil.copytree(sample_dataset(), data)
    else:
        make_drawn_dataset(data, target, per_class=per_class, seed=seed + 7)
    flipped = flip_labels(data, flip, seed)
    started = time.perf_counter()
    issues = find_label_issues(inspect_folder(data), str(backbone))  # the file's own (pretrained) weights
    return {
        "task": name,
        "seed": seed,
        "images": sum(1 for _ in data.glob("*/*")),
        "source_accuracy": round(float(source_accuracy), 3),
        "seconds": round(time.perf_counter() - started, 1),
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in score(issues, flipped).items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tlstudio-bench-labels-"))
    rows = [
        run_task(name, work, args.flip, args.per_class, int(seed))
        for name in args.tasks.split(",")
        for seed in args.seeds.split(",")
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{args.flip:.0%} of labels flipped; random ranking would give precision@k = {args.flip:.2f}\n")
    print(
        f"{'task':<20}{'seed':>5}{'images':>8}{'flipped':>9}{'listed':>8}{'prec@k':>8}{'recall':>8}{'s':>7}"
    )
    for r in rows:
        print(
            f"{r['task']:<20}{r['seed']:>5}{r['images']:>8}{r['flipped']:>9}{r['listed']:>8}"
            f"{r['precision_at_k']:>8.2f}{r['recall']:>8.2f}{r['seconds']:>7.1f}"
        )
    mean = np.mean([r["precision_at_k"] for r in rows])
    print(f"\nmean precision@k {mean:.2f}; mean recall {np.mean([r['recall'] for r in rows]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
