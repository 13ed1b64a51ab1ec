"""Does `tlstudio train` with a user's own .keras backbone match the Keras guide's recipe?

Run:  python benchmarks/transfer_vs_guide.py [--per-class 40] [--guide-epochs 20] [--seeds 3]

A small CNN is pretrained on drawn shapes (circle, square, triangle, cross) and saved as .keras.
The transfer task has other shapes (ring, diamond, horizontal bar, vertical bar) and few images.
Both contenders use the same train/val/test files (TL Studio's split manifest):

- guide: the frozen-backbone recipe of the Keras guide "Transfer learning & fine-tuning"
  (image_dataset_from_directory, RandomFlip + RandomRotation(0.1), base(training=False),
  Dropout(0.2), Dense logits, Adam, fit for N epochs);
- tlstudio: `tlstudio train DATA --backbone model.keras` with its defaults (two phases,
  early stopping), scored by loading RUN/saved_model with plain TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factory import make_shapes_dataset, pretrain_shapes_backbone  # noqa: E402

from tlstudio.core.data.health import inspect_folder  # noqa: E402
from tlstudio.core.data.split import Manifest, make_split  # noqa: E402


def split_folders(data: Path, manifest: Manifest, out: Path) -> dict[str, Path]:
    """train/ val/ test/ folders of links to the manifest's files, for image_dataset_from_directory."""
    folders = {}
    for split in ("train", "val", "test"):
        for entry in manifest.subset(split):
            target = out / split / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(data / entry.path, target)
        folders[split] = out / split
    return folders


def guide_recipe(backbone_file: Path, folders: dict[str, Path], size: int, epochs: int, seed: int) -> float:
    """The Keras guide's frozen-backbone recipe; returns test accuracy."""
    import keras

    keras.utils.set_random_seed(seed)
    load = dict(image_size=(size, size), batch_size=32, label_mode="int", seed=seed)
    train_ds = keras.utils.image_dataset_from_directory(folders["train"], shuffle=True, **load)
    val_ds = keras.utils.image_dataset_from_directory(folders["val"], shuffle=False, **load)
    test_ds = keras.utils.image_dataset_from_directory(folders["test"], shuffle=False, **load)
    n_classes = len(train_ds.class_names)
    train_ds, val_ds, test_ds = (d.cache().prefetch(8) for d in (train_ds, val_ds, test_ds))

    pretrained = keras.models.load_model(backbone_file)
    cut = next(layer for layer in reversed(pretrained.layers) if "pool" in type(layer).__name__.lower())
    base_model = keras.Model(pretrained.input, cut.output)  # at its last pooling layer
    base_model.trainable = False
    augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)])
    inputs = keras.Input((size, size, 3))
    x = augmentation(inputs)
    x = base_model(x, training=False)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(n_classes)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    model.fit(train_ds, epochs=epochs, validation_data=val_ds, verbose=0)
    return float(model.evaluate(test_ds, verbose=0, return_dict=True)["sparse_categorical_accuracy"])


def tlstudio_run(
    backbone_file: Path, data: Path, manifest_file: Path, run: Path, seed: int, extra: tuple[str, ...] = ()
) -> float:
    """`tlstudio train` with defaults, scored through plain TensorFlow; returns test accuracy."""
    command = [
        sys.executable,
        "-m",
        "tlstudio",
        "train",
        str(data),
        "--backbone",
        str(backbone_file),
        "--manifest",
        str(manifest_file),
        "--seed",
        str(seed),
        "--out",
        str(run),
        *extra,
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return score_saved_model(run / "saved_model", data, Manifest.load(manifest_file))


def score_saved_model(saved_model: Path, data: Path, manifest: Manifest) -> float:
    """Accuracy on the test split with nothing but tf.saved_model.load and Pillow."""
    import tensorflow as tf
    from PIL import Image

    loaded = tf.saved_model.load(str(saved_model))
    labels = (saved_model / "assets" / "labels.txt").read_text().split()
    correct = 0
    test = manifest.subset("test")
    for entry in test:
        pixels = np.asarray(Image.open(data / entry.path).convert("RGB"), np.float32)[None]
        correct += labels[int(np.argmax(loaded.serve(pixels)[0]))] == entry.label
    return correct / len(test)


def compare(
    work: Path, per_class: int, guide_epochs: int, seed: int, backbone_file: Path, extra: tuple[str, ...] = ()
) -> dict[str, float]:
    """One side-by-side run on a fresh transfer dataset."""
    data = make_shapes_dataset(work / f"data{seed}", per_class=per_class, seed=seed)
    manifest = make_split(inspect_folder(data).images)
    manifest_file = manifest.save(work / f"manifest{seed}.csv")
    folders = split_folders(data, manifest, work / f"guide_split{seed}")
    start = time.perf_counter()
    guide = guide_recipe(backbone_file, folders, 32, guide_epochs, seed)
    t_guide = time.perf_counter() - start
    start = time.perf_counter()
    ours = tlstudio_run(backbone_file, data, manifest_file, work / f"run{seed}", seed, extra)
    t_ours = time.perf_counter() - start
    return {
        "guide": guide,
        "tlstudio": ours,
        "guide_s": t_guide,
        "tlstudio_s": t_ours,
        "test_images": len(manifest.subset("test")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--guide-epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tlstudio-transfer-"))
    try:
        backbone_file, val_acc = pretrain_shapes_backbone(work / "shapes_cnn.keras")
        print(f"pretrained backbone: val accuracy {val_acc:.3f} on the pretraining shapes")
        header = ("seed", "test imgs", "guide acc", "tlstudio acc", "guide s", "tlstudio s")
        print("\n{:>4} {:>9} {:>10} {:>13} {:>8} {:>11}".format(*header))
        rows = []
        for seed in range(args.seeds):
            r = compare(work, args.per_class, args.guide_epochs, seed, backbone_file)
            rows.append(r)
            print(
                f"{seed:>4} {r['test_images']:>9} {r['guide']:>10.3f} {r['tlstudio']:>13.3f} "
                f"{r['guide_s']:>8.1f} {r['tlstudio_s']:>11.1f}"
            )
        g = np.mean([r["guide"] for r in rows])
        t = np.mean([r["tlstudio"] for r in rows])
        print(f"\nmean test accuracy: guide {g:.3f}, tlstudio {t:.3f} (difference {t - g:+.3f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
