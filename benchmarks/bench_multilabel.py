"""Multi-label: does `tlstudio train labels.csv` with its defaults match a hand-written Keras sigmoid head?

Run:  python benchmarks/bench_multilabel.py [--images 300] [--epochs 20] [--seeds 3]

A small CNN is pretrained on drawn shapes (circle, square, triangle, cross; 64 px) and saved as .keras.
Two multi-label tasks are built, 64 px, images with several labels or none:

- mosaics: a 2×2 mosaic of tiles, each empty or one of five other shapes (ring, diamond, hbar, vbar,
  xcross); the labels are the shapes present;
- textures+glyphs: each half of the image is plain or one of three textures (stripes, checks, dots) and
  up to two quadrants hold a printed digit (0, 1, 2); the labels are the textures and digits present.

Both contenders use the same train/validation/test files (TL Studio's iteratively stratified manifest):

- script: the frozen-backbone recipe a Keras user writes by hand for multi-label — base(training=False),
  RandomFlip + RandomRotation(0.1), Dropout(0.2), Dense(labels, sigmoid), binary cross-entropy, Adam,
  fit for N epochs with the validation split;
- tlstudio: `tlstudio train labels.csv --backbone model.keras --manifest m.csv` with its defaults, scored
  by loading RUN/saved_model with plain TensorFlow.

Both are scored by macro mAP on the test split with scikit-learn's ``average_precision_score``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factory import draw_any, draw_glyph, encode, pretrain_source_model, write  # noqa: E402

from tlstudio.core.data.source import inspect_data  # noqa: E402
from tlstudio.core.data.split import Manifest, SplitConfig, make_split  # noqa: E402

SIZE = 64
TILE = SIZE // 2
SHAPES = ("ring", "diamond", "hbar", "vbar", "xcross")
TEXTURES = ("stripes", "checks", "dots")
DIGITS = ("0", "1", "2")


def mosaic(rng: np.random.Generator) -> tuple[np.ndarray, set[str]]:
    """A 2×2 mosaic of tiles, each empty (p 0.4) or a shape."""
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    labels = set()
    for q in range(4):
        y, x = (q // 2) * TILE, (q % 2) * TILE
        if rng.random() < 0.4:
            tile = np.clip(rng.normal(60, 25, (TILE, TILE, 3)), 0, 255).astype(np.uint8)
        else:
            kind = SHAPES[int(rng.integers(len(SHAPES)))]
            tile = draw_any(kind, TILE, rng)
            labels.add(kind)
        img[y : y + TILE, x : x + TILE] = tile
    return img, labels


def texture(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A texture of random colour, period and phase (or plain noise for kind '')."""
    yy, xx = np.mgrid[0:height, 0:width]
    period = int(rng.integers(4, 9))
    phase = int(rng.integers(period))
    if kind == "stripes":
        mask = ((xx + yy + phase) // (period // 2 + 1)) % 2 == 0
    elif kind == "checks":
        mask = (((xx + phase) // period) + ((yy + phase) // period)) % 2 == 0
    elif kind == "dots":
        mask = (((xx + phase) % period) - period / 2) ** 2 + (((yy + phase) % period) - period / 2) ** 2 < (
            period / 3.5
        ) ** 2
    else:
        mask = np.zeros((height, width), bool)
    ink, paper = rng.integers(140, 256, 3), rng.integers(0, 100, 3)
    arr = np.where(mask[..., None], ink, paper) + rng.normal(0, 12, (height, width, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def textures_and_glyphs(rng: np.random.Generator) -> tuple[np.ndarray, set[str]]:
    """Two halves, each plain or a texture, and up to two quadrants with a digit."""
    labels = set()
    halves = []
    for _ in range(2):
        kind = "" if rng.random() < 0.3 else TEXTURES[int(rng.integers(len(TEXTURES)))]
        halves.append(texture(kind, SIZE, TILE, rng))
        labels |= {kind} - {""}
    img = np.concatenate(halves, axis=1)
    for q in rng.permutation(4)[: int(rng.integers(0, 3))]:
        digit = DIGITS[int(rng.integers(len(DIGITS)))]
        y, x = (q // 2) * TILE, (q % 2) * TILE
        img[y : y + TILE, x : x + TILE] = draw_glyph(digit, TILE, rng)
        labels.add(digit)
    return img, labels


TASKS = {"mosaics": mosaic, "textures+glyphs": textures_and_glyphs}


def make_task(name: str, root: Path, images: int, seed: int) -> Path:
    """root/labels.csv over PNGs of one task."""
    rng = np.random.default_rng(seed)
    rows = ["path,labels"]
    for i in range(images):
        img, labels = TASKS[name](rng)
        write(root / "images" / f"{i:04d}.png", encode(img, "PNG"))
        rows.append(f"images/{i:04d}.png,{';'.join(sorted(labels))}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def arrays(data: Path, manifest: Manifest, split: str, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    entries = manifest.subset(split)
    x = np.stack([np.asarray(Image.open(data / e.path).convert("RGB"), np.float32) for e in entries])
    y = np.array([[name in e.labels for name in labels] for e in entries], np.float32)
    return x, y


def macro_map(y: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    present = y.sum(0) > 0
    return float(average_precision_score(y[:, present], probs[:, present], average="macro"))


def sigmoid_head_script(backbone: Path, data: Path, manifest: Manifest, epochs: int, seed: int) -> float:
    """The hand-written Keras recipe; returns test macro mAP."""
    import keras

    keras.utils.set_random_seed(seed)
    labels = manifest.classes
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        arrays(data, manifest, s, labels) for s in ("train", "val", "test")
    )
    pretrained = keras.models.load_model(backbone)
    base = keras.Model(pretrained.input, pretrained.get_layer("gap").output)
    base.trainable = False
    augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)])
    inputs = keras.Input((SIZE, SIZE, 3))
    h = base(augmentation(inputs), training=False)
    h = keras.layers.Dropout(0.2)(h)
    outputs = keras.layers.Dense(len(labels), activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(), "binary_crossentropy")
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_val, y_val), verbose=0)
    return macro_map(y_test, model.predict(x_test, verbose=0))


def tlstudio_run(backbone: Path, csv: Path, manifest_file: Path, run: Path, seed: int) -> float:
    """`tlstudio train labels.csv` with defaults, scored through plain TensorFlow; returns test macro mAP."""
    import tensorflow as tf

    command = [sys.executable, "-m", "tlstudio", "train", str(csv), "--backbone", str(backbone)]
    command += ["--manifest", str(manifest_file), "--seed", str(seed), "--out", str(run)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    manifest = Manifest.load(manifest_file)
    labels = (run / "saved_model" / "assets" / "labels.txt").read_text().split()
    x, y = arrays(csv.parent, manifest, "test", labels)
    loaded = tf.saved_model.load(str(run / "saved_model"))
    probs = np.concatenate([loaded.serve(tf.constant(x[i : i + 64])).numpy() for i in range(0, len(x), 64)])
    return macro_map(y, probs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tlstudio-multilabel-"))
    try:
        backbone, val_acc = pretrain_source_model(
            work / "shapes_cnn.keras", ("circle", "square", "triangle", "cross"), size=SIZE
        )
        print(f"pretrained backbone: val accuracy {val_acc:.3f} on the pretraining shapes")
        print(
            f"\n{'task':<16} {'seed':>4} {'test imgs':>9} {'script mAP':>10} {'tlstudio mAP':>12} "
            f"{'script s':>8} {'tlstudio s':>10}"
        )
        results: dict[str, list[tuple[float, float]]] = {}
        for task in TASKS:
            for seed in range(args.seeds):
                csv = make_task(task, work / f"{task}-{seed}", args.images, seed)
                manifest = make_split(inspect_data(csv).images, SplitConfig(seed=seed), multi_label=True)
                manifest_file = manifest.save(work / f"{task}-{seed}.manifest.csv")
                start = time.perf_counter()
                script = sigmoid_head_script(backbone, csv.parent, manifest, args.epochs, seed)
                t_script = time.perf_counter() - start
                start = time.perf_counter()
                ours = tlstudio_run(backbone, csv, manifest_file, work / f"run-{task}-{seed}", seed)
                t_ours = time.perf_counter() - start
                results.setdefault(task, []).append((script, ours))
                print(
                    f"{task:<16} {seed:>4} {len(manifest.subset('test')):>9} {script:>10.3f} {ours:>12.3f} "
                    f"{t_script:>8.1f} {t_ours:>10.1f}",
                    flush=True,
                )
        for task, rows in results.items():
            s, t = np.mean(rows, axis=0)
            print(f"\n{task}: mean test macro mAP script {s:.3f}, tlstudio {t:.3f} (difference {t - s:+.3f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
