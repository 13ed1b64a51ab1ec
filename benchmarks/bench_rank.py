"""How well `tlstudio rank` predicts which backbone fine-tunes best, against "bigger is better".

Run:  python benchmarks/bench_rank.py [--per-class 60] [--tasks shapes,glyphs,textures,handwritten digits]

For each task (as in bench_label_issues.py), four candidate backbones, all small CNNs saved as .keras:

- related: trained beforehand on other classes of the same kind (the useful pretrained model);
- unrelated: the same CNN trained on another kind of picture;
- untrained: the same CNN with random weights;
- bigger untrained: a CNN with twice the filters, random weights (the largest candidate).

Each candidate is ranked (``rank_backbones`` on the task's folder, its training split) and then
really trained with the untouched defaults (``TrainingSession``: probe, then fine-tuning), and scored
on 100 unseen images per class (drawn tasks) or on the test split (the bundled digits). Figures per
task: Kendall's τ between each ranking and the fine-tuned accuracies, whether its first pick is the
best fine-tuned candidate, and the ranking's time for the four candidates; against the same for
ordering by parameter count ("bigger is better").
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

from bench_label_issues import TASKS  # noqa: E402  (the same four tasks)
from factory import GLYPHS_A, SHAPES_A, TEXTURES_A, draw_any, make_drawn_dataset, pretrain_source_model  # noqa: E402

UNRELATED = {"shapes": TEXTURES_A, "glyphs": SHAPES_A, "textures": GLYPHS_A, "handwritten digits": TEXTURES_A}


def bigger_untrained(path: Path, classes: int) -> Path:
    """A CNN like the source models with twice the filters, untrained."""
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Rescaling(1 / 255.0)(inputs)
    for i, filters in enumerate((32, 64, 128)):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(h)
        h = keras.layers.BatchNormalization(name=f"bn{i}")(h)
        h = keras.layers.ReLU(name=f"relu{i}")(h)
        h = keras.layers.MaxPooling2D(name=f"pool{i}")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(h)).save(path)
    return path


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's τ-b of two scorings of the same items."""
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def unseen_accuracy(model, target, per_class: int = 100) -> float:
    """Accuracy of a trained classifier on freshly drawn images of the task's classes."""
    rng = np.random.default_rng(999)
    x = np.stack([draw_any(k, 32, rng) for k in target for _ in range(per_class)]).astype("float32")
    names = sorted(f"c_{k}" if len(k) == 1 else k for k in target)
    y = np.array([names.index(f"c_{k}" if len(k) == 1 else k) for k in target for _ in range(per_class)])
    return float((model.predict(x, verbose=0).argmax(1) == y).mean())


def run_task(name: str, work: Path, per_class: int) -> dict[str, object]:
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.ranking import rank_backbones
    from tlstudio.core.training.session import TrainingSession
    from tlstudio.package_data import sample_dataset

    source, target = TASKS[name]
    folder = work / name.replace(" ", "_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data = folder / "data"
    if target == "digits":
        shutil.copytree(sample_dataset(), data)
    else:
        make_drawn_dataset(data, target, per_class=per_class, seed=11)
    classes = len([p for p in data.iterdir() if p.is_dir()])
    candidates = {
        "related": pretrain_source_model(folder / "related.keras", source, per_class=200, epochs=6)[0],
        "unrelated": pretrain_source_model(
            folder / "unrelated.keras", UNRELATED[name], per_class=200, epochs=6
        )[0],
    }
    import keras

    keras.models.clone_model(keras.models.load_model(candidates["related"])).save(folder / "untrained.keras")
    candidates["untrained"] = folder / "untrained.keras"
    candidates["bigger untrained"] = bigger_untrained(folder / "bigger.keras", classes)
    report = inspect_folder(data)
    started = time.perf_counter()
    ranked = rank_backbones(report, [str(p) for p in candidates.values()])
    rank_seconds = time.perf_counter() - started
    by_path = {r.backbone: r for r in ranked}
    rows = {}
    for label, path in candidates.items():
        result = TrainingSession(TrainSettings(backbone=str(path)), data, folder / f"run-{label}").run()
        accuracy = (
            result.metrics.get("test_accuracy")
            if target == "digits" or result.model is None
            else unseen_accuracy(result.model, target)
        )
        r = by_path[str(path)]
        rows[label] = {
            "fine_tuned": round(float(accuracy or 0.0), 3),
            "status": result.status,
            "probe": r.score,
            "knn": r.knn,
            "logme": r.logme,
            "tied_with_best": r.tied_with_best,
            "parameters": r.parameters,
        }
    truth = [rows[k]["fine_tuned"] for k in rows]
    best = max(truth)
    out = {"task": name, "rank_seconds": round(rank_seconds, 1), "candidates": rows}
    for scorer in ("probe", "knn", "logme", "parameters"):
        scores = [rows[k][scorer] for k in rows]
        out[f"tau_{scorer}"] = round(kendall_tau(scores, truth), 3)
        out[f"top1_{scorer}"] = truth[int(np.argmax(scores))] == best
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tlstudio-bench-rank-"))
    results = [run_task(name, work, args.per_class) for name in args.tasks.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(f"\n{r['task']} (ranking the four took {r['rank_seconds']} s)")
        print(f"  {'candidate':<18}{'fine-tuned':>11}{'probe':>8}{'k-NN':>7}{'LogME':>8}{'params':>9}  tied")
        for label, c in r["candidates"].items():
            print(
                f"  {label:<18}{c['fine_tuned']:>11.3f}{c['probe']:>8.3f}{c['knn']:>7.3f}{c['logme']:>8.3f}"
                f"{c['parameters']:>9}  {'=' if c['tied_with_best'] else ''}"
            )
    print("\nKendall τ with fine-tuned accuracy (top-1 hit):")
    for scorer in ("probe", "knn", "logme", "parameters"):
        taus = [r[f"tau_{scorer}"] for r in results]
        hits = sum(bool(r[f"top1_{scorer}"]) for r in results)
        print(
            f"  {scorer:<11} "
            + " ".join(f"{t:>6.2f}" for t in taus)
            + f"   mean {np.mean(taus):.2f}, top-1 {hits}/{len(results)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
