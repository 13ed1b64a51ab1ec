"""What to label next: accuracy against the number of labelled images, active selection
(``tlstudio suggest``'s ``select_to_label``) versus random selection, on tasks of different kinds.

Run:  python benchmarks/bench_active_learning.py [--seeds 0,1,2,3,4] [--rounds 6]

Each task: a small CNN trained beforehand on *other* classes of the same kind (the user's related
pretrained backbone, as in bench_label_issues.py) gives features; a pool of unlabelled images and a
separate test set of the task's classes. Both strategies start from the same one labelled image per
class; each round labels one more image per class's worth (``classes`` images), picked at random or
by ``select_to_label`` on the current model's probabilities and features, then refits the recipe's
phase-1 probe (``fit_probe``) and scores the test set. Figures: mean test accuracy over seeds at each
budget, and the mean gain of active over random (with its spread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_label_issues import TASKS  # noqa: E402  (the same four tasks)
from factory import draw_any, pretrain_source_model  # noqa: E402


def task_features(name: str, work: Path, pool_per_class: int, test_per_class: int):
    """(pool features, pool labels, test features, test labels, number of classes) of one task."""
    import keras

    from tlstudio.core.data.pipeline import load_for_model
    from tlstudio.package_data import sample_dataset

    source, target = TASKS[name]
    path, _ = pretrain_source_model(work / f"{name.replace(' ', '_')}.keras", source, per_class=200, epochs=6)
    model = keras.models.load_model(path)
    extractor = keras.Model(model.inputs, model.get_layer("gap").output)
    rng = np.random.default_rng(123)
    if target == "digits":
        files = sorted(sample_dataset().glob("*/*.png"))
        classes = sorted({f.parent.name for f in files})
        x = np.stack([load_for_model(f, 32) for f in files]).astype("float32")
        y = np.array([classes.index(f.parent.name) for f in files])
    else:
        per = pool_per_class + test_per_class
        x = np.stack([draw_any(k, 32, rng) for k in target for _ in range(per)]).astype("float32")
        y = np.repeat(np.arange(len(target)), per)
    feats = extractor.predict(x, verbose=0, batch_size=64)
    num_classes = int(y.max()) + 1
    test = np.zeros(len(y), bool)
    for c in range(num_classes):
        members = rng.permutation(np.flatnonzero(y == c))
        test[members[: min(test_per_class, len(members) // 3)]] = True
    return feats[~test], y[~test], feats[test], y[test], num_classes


def curve(strategy, feats, y, test_f, test_y, num_classes, rounds, seed) -> list[float]:
    """Test accuracy after each round, starting from one labelled image per class."""
    from tlstudio.core.training.label_next import select_to_label
    from tlstudio.core.training.probe import fit_probe

    rng = np.random.default_rng(seed)
    labelled = [int(rng.choice(np.flatnonzero(y == c))) for c in range(num_classes)]
    accuracies = []
    for _ in range(rounds + 1):
        probe = fit_probe(feats[labelled], y[labelled], num_classes, seed=seed)
        accuracies.append(float((probe.predict_proba(test_f).argmax(1) == test_y).mean()))
        rest = np.setdiff1d(np.arange(len(y)), labelled)
        if strategy == "random":
            picked = rng.choice(rest, size=num_classes, replace=False)
        else:
            picked = rest[select_to_label(probe.predict_proba(feats[rest]), feats[rest], num_classes)]
        labelled += [int(i) for i in picked]
    return accuracies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--pool-per-class", type=int, default=60)
    parser.add_argument("--test-per-class", type=int, default=40)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tlstudio-bench-active-"))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name in args.tasks.split(","):
        data = task_features(name, work, args.pool_per_class, args.test_per_class)
        random_runs = np.array([curve("random", *data, args.rounds, s) for s in seeds])
        active_runs = np.array([curve("active", *data, args.rounds, s) for s in seeds])
        gain = active_runs - random_runs
        rows.append(
            {
                "task": name,
                "classes": data[4],
                "labels_per_class": list(range(1, args.rounds + 2)),
                "random": random_runs.mean(0).round(3).tolist(),
                "active": active_runs.mean(0).round(3).tolist(),
                "gain_mean": round(float(gain[:, 1:].mean()), 3),
                "rounds_won": f"{int((gain[:, 1:] > 0).sum())}/{gain[:, 1:].size}",
                "rounds_lost": f"{int((gain[:, 1:] < 0).sum())}/{gain[:, 1:].size}",
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"mean test accuracy over {len(seeds)} seeds; labels per class after each round\n")
    for r in rows:
        print(f"{r['task']} ({r['classes']} classes)")
        print("  labels/class " + " ".join(f"{n:>6}" for n in r["labels_per_class"]))
        print("  random       " + " ".join(f"{a:>6.3f}" for a in r["random"]))
        print("  active       " + " ".join(f"{a:>6.3f}" for a in r["active"]))
        print(
            f"  gain (rounds 2+): mean {r['gain_mean']:+.3f}; active ahead in {r['rounds_won']} "
            f"(seed, round) pairs, behind in {r['rounds_lost']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
