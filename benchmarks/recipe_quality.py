"""Are TL Studio's untouched defaults as good as an expert's recipe? Several transfer tasks, several seeds.

Run:  python benchmarks/recipe_quality.py [--seeds 3] [--tasks shapes,glyphs,textures,random-mnv3]
      [--contenders tlstudio,guide,expert] [--unseen 100] [--counts 30 | 60,30,15,8,5] [--json FILE]
      [--train-args "--soup 0"]

``--counts`` sets the images per class of the target folder: one number for every class (8: a
few-shot folder; 300: a large one), or one per class (``60,30,15,8,5``: an imbalanced folder, where
the expert script trains with balanced class weights, as a practitioner would). The unseen images
are always ``--unseen`` per class, so their accuracy is the balanced accuracy.

Each task is built here: a source model that a user might have trained before (a small CNN trained on
related classes and saved as ``.keras``) and a small target folder (30 images in each of 5 classes, a
new one per seed). Every contender gets the same folder and TL Studio's split manifest, and is scored
on the same unseen images (``--unseen`` per class, drawn afresh) through the exported SavedModel or the
trained Keras model:

- tlstudio: ``tlstudio train DATA --backbone SOURCE.keras --image-size 32 --seed S`` and nothing else,
  scored by loading RUN/saved_model with plain TensorFlow;
- guide: the Keras guide's frozen-backbone recipe (20 epochs of a new head, augmentation);
- expert: a hand-written two-phase script: the head to convergence on the frozen backbone (early
  stopping on validation loss), then the whole backbone at a 100× lower rate, BatchNorm frozen.

Tasks: ``shapes`` (drawn shapes; the source saw other shapes), ``glyphs`` (printed digits; the source saw
letters), ``textures`` (periodic and random textures; the source saw other textures), ``random-mnv3``
(MobileNetV3Small with random but fixed weights as the "pretrained" model: a stress case whose
features carry no knowledge of the task).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from factory import (  # noqa: E402
    GLYPHS_A,
    GLYPHS_B,
    SHAPES_A,
    SHAPES_C,
    TEXTURES_A,
    TEXTURES_B,
    draw_any,
    make_drawn_dataset,
    pretrain_source_model,
)
from transfer_vs_guide import guide_recipe, split_folders  # noqa: E402

from tlstudio.core.data.health import inspect_folder  # noqa: E402
from tlstudio.core.data.split import make_split  # noqa: E402

SIZE = 32
TASKS = {  # name: (source classes, target classes)
    "shapes": (SHAPES_A, SHAPES_C),
    "glyphs": (GLYPHS_A, GLYPHS_B),
    "textures": (TEXTURES_A, TEXTURES_B),
    "random-mnv3": (None, SHAPES_C),
}


def source_model(task: str, work: Path) -> Path:
    """The task's pretrained ``.keras`` file (built once per task)."""
    path = work / f"source-{task}.keras"
    if path.is_file():
        return path
    source, _ = TASKS[task]
    if source is None:
        import keras

        keras.utils.set_random_seed(0)
        base = keras.applications.MobileNetV3Small(
            input_shape=(SIZE, SIZE, 3), include_top=False, weights=None, pooling="avg"
        )
        base.save(path)
        return path
    _, accuracy = pretrain_source_model(path, source, size=SIZE, per_class=250, epochs=8)
    print(f"  source model for {task}: val accuracy {accuracy:.3f} on its own classes", flush=True)
    return path


def unseen_set(kinds, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh images of the target classes, never on disk, never seen by any contender."""
    rng = np.random.default_rng(10_000 + seed)
    x = np.stack([draw_any(k, SIZE, rng) for k in kinds for _ in range(per_class)])
    y = np.repeat(np.arange(len(kinds)), per_class)
    return x, y


def class_names(kinds) -> list[str]:
    """Folder names as ``make_drawn_dataset`` writes them, in sorted (label index) order."""
    return sorted(f"c_{k}" if len(k) == 1 else k for k in kinds)


def score_saved_model(saved_model: Path, x: np.ndarray, y: np.ndarray, kinds) -> float:
    """Accuracy of an exported SavedModel with plain TensorFlow."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))
    labels = (saved_model / "assets" / "labels.txt").read_text().splitlines()
    names = class_names(kinds)
    unsorted = [f"c_{k}" if len(k) == 1 else k for k in kinds]
    truth = [unsorted[i] for i in y]
    probs = np.concatenate(
        [loaded.serve(x[i : i + 64].astype(np.float32)).numpy() for i in range(0, len(x), 64)]
    )
    predicted = [labels[i] for i in probs.argmax(1)]
    assert sorted(labels) == names, (labels, names)
    return float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))


TRAIN_ARGS: list[str] = []  # --train-args: options added to `tlstudio train` (an ablation of a default)


def run_tlstudio(source: Path, data: Path, manifest_file: Path, run: Path, seed: int) -> Path | None:
    """``tlstudio train`` with the defaults; returns the SavedModel folder."""
    command = [sys.executable, "-m", "tlstudio", "train", str(data), "--backbone", str(source)]
    command += ["--image-size", str(SIZE), "--manifest", str(manifest_file), "--seed", str(seed)]
    command += TRAIN_ARGS
    command += ["--out", str(run)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 3:  # failed_to_learn: nothing exported, the run said so
        return None
    if done.returncode != 0:
        raise RuntimeError(
            f"tlstudio train failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return run / "saved_model"


def expert_recipe(source: Path, folders: dict[str, Path], seed: int, balanced: bool = False):
    """A practitioner's two-phase script (balanced class weights when ``balanced``); returns a Keras
    model taking 0-255 pixels."""
    import keras

    keras.utils.set_random_seed(seed)
    load = dict(image_size=(SIZE, SIZE), batch_size=16, label_mode="int", seed=seed)
    train = keras.utils.image_dataset_from_directory(folders["train"], shuffle=True, **load).cache()
    val = keras.utils.image_dataset_from_directory(folders["val"], shuffle=False, **load).cache()
    n = len(os.listdir(folders["train"]))
    class_weight = None
    if balanced:  # scikit-learn's "balanced": total / (classes × count)
        counts = [len(os.listdir(folders["train"] / c)) for c in sorted(os.listdir(folders["train"]))]
        class_weight = {i: sum(counts) / (n * c) for i, c in enumerate(counts)}
    pretrained = keras.models.load_model(source, compile=False)
    cut = next(layer for layer in reversed(pretrained.layers) if "pool" in type(layer).__name__.lower())
    base = keras.Model(pretrained.input, cut.output)
    base.trainable = False
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.RandomRotation(0.05)(x)
    x = base(x, training=False)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(n, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    stop = dict(monitor="val_loss", restore_best_weights=True)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        train,
        validation_data=val,
        epochs=100,
        verbose=0,
        class_weight=class_weight,
        callbacks=[keras.callbacks.EarlyStopping(patience=10, **stop)],
    )
    base.trainable = True
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        train,
        validation_data=val,
        epochs=30,
        verbose=0,
        class_weight=class_weight,
        callbacks=[keras.callbacks.EarlyStopping(patience=5, **stop)],
    )
    return model


def score_keras(model, x, y) -> float:
    return float(np.mean(model.predict(x.astype(np.float32), verbose=0).argmax(1) == y))


def guide_model_score(source, folders, x, y, seed) -> float:
    """The Keras guide's recipe (from transfer_vs_guide), scored on the unseen images."""
    import keras

    scores = {}
    original = keras.Model.evaluate

    def evaluate_unseen(model, *args, **kwargs):
        logits = model.predict(x.astype(np.float32), verbose=0)
        scores["acc"] = float(np.mean(logits.argmax(1) == y))
        return {"sparse_categorical_accuracy": scores["acc"]}

    keras.Model.evaluate = evaluate_unseen
    try:
        guide_recipe(source, folders, SIZE, 20, seed)
    finally:
        keras.Model.evaluate = original
    return scores["acc"]


def drawn_folder(root: Path, kinds, counts: list[int], seed: int) -> Path:
    """``make_drawn_dataset`` with its own number of images per class (the first ``counts[i]``)."""
    make_drawn_dataset(root, kinds, per_class=max(counts), size=SIZE, seed=seed)
    for kind, count in zip(kinds, counts, strict=True):
        folder = root / (f"c_{kind}" if len(kind) == 1 else kind)
        for extra in sorted(folder.iterdir())[count:]:
            extra.unlink()
    return root


def one(
    task: str, seed: int, work: Path, contenders: list[str], per_class_unseen: int, counts: list[int]
) -> dict:
    _, kinds = TASKS[task]
    source = source_model(task, work)
    for stale in work.glob(f"{task}-*{seed}"):  # a kept work folder from an earlier run
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    counts = counts * len(kinds) if len(counts) == 1 else counts
    data = drawn_folder(work / f"{task}-data{seed}", kinds, counts, seed)
    manifest = make_split(inspect_folder(data).images)
    manifest_file = manifest.save(work / f"{task}-manifest{seed}.csv")
    folders = split_folders(data, manifest, work / f"{task}-split{seed}")
    x, y = unseen_set(kinds, per_class_unseen, seed)
    # labels in folder-sorted order, for the Keras contenders (image_dataset_from_directory sorts too)
    order = {name: i for i, name in enumerate(class_names(kinds))}
    unsorted = [f"c_{k}" if len(k) == 1 else k for k in kinds]
    y_sorted = np.array([order[unsorted[i]] for i in y])
    row = {"task": task, "seed": seed}
    for who in contenders:
        start = time.perf_counter()
        if who == "tlstudio":
            saved = run_tlstudio(source, data, manifest_file, work / f"{task}-run{seed}", seed)
            # a run that ended failed_to_learn exported nothing: scored as chance
            acc = score_saved_model(saved, x, y, kinds) if saved else 1 / len(kinds)
        elif who == "guide":
            acc = guide_model_score(source, folders, x, y_sorted, seed)
        else:
            balanced = len(set(counts)) > 1
            acc = score_keras(expert_recipe(source, folders, seed, balanced), x, y_sorted)
        row[who] = acc
        row[f"{who}_s"] = time.perf_counter() - start
        print(f"  {task:12} seed {seed}  {who:9} accuracy {acc:.3f}  ({row[f'{who}_s']:.1f} s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--contenders", default="tlstudio,guide,expert")
    parser.add_argument("--unseen", type=int, default=100, help="unseen test images per class")
    parser.add_argument("--counts", default="30", help="images per class: N, or one per class (A,B,…)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument(
        "--train-args", default="", help='options added to `tlstudio train`, e.g. "--soup 0" (an ablation)'
    )
    args = parser.parse_args()
    TRAIN_ARGS[:] = shlex.split(args.train_args)
    contenders = args.contenders.split(",")
    work = args.keep or Path(tempfile.mkdtemp(prefix="tlstudio-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for task in args.tasks.split(","):
            for seed in range(args.seeds):
                counts = [int(c) for c in args.counts.split(",")]
                rows.append(one(task, seed, work, contenders, args.unseen, counts))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| task | " + " | ".join(f"{c} mean (min–max)" for c in contenders) + " | tlstudio s |")
    print("| --- |" + " ---: |" * (len(contenders) + 1))
    for task in args.tasks.split(","):
        mine = [r for r in rows if r["task"] == task]
        cells = []
        for c in contenders:
            a = [r[c] for r in mine]
            cells.append(f"{np.mean(a):.3f} ({min(a):.3f}–{max(a):.3f})")
        t = [r.get("tlstudio_s", float("nan")) for r in mine]
        print(f"| {task} | " + " | ".join(cells) + f" | {np.mean(t):.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
