"""EfficientNet-Lite0 (real ImageNet weights, offline) on real photos: TL Studio's defaults against
the sample's digits CNN, a from-scratch baseline and the Keras guide's two-phase script, in one run.

Run:  python benchmarks/bench_offline_backbone.py PHOTOS_DIR [--tasks photos,textures,photos-8shot]
      [--contenders lite0,digits-cnn,scratch,guide] [--guide-epochs 20,10] [--json FILE] [--keep DIR]

PHOTOS_DIR holds real photos; the ones scikit-image ships fit (BSD-licensed, no network afterwards;
scikit-image is not needed, only its files):

    pip download --no-deps scikit-image -d /tmp/ski
    unzip -o -q /tmp/ski/scikit_image-*.whl 'skimage/data/*' -d /tmp/ski   # PHOTOS_DIR: /tmp/ski/skimage/data

Tasks (built here from the photos; every crop is saved as a 224 × 224 JPEG):

- ``photos`` — "which photo is this patch from?": 6 colour photos are the classes (astronaut, cat,
  coffee, Hubble deep field, motorcycle, rocket). Each photo is resized to a shorter side of 384 px
  and cut into a 3 × 3 grid of regions *before* any crop is taken; per photo (and seed) 3 regions are
  test, 2 validation and 4 train, so no test crop shares a pixel with a training or validation crop.
  Crops: a random square inside one region of the split, 50–100 % of the region's shorter side, at
  a random position, mirrored half the time, with colour jitter (brightness ×0.75–1.25, each channel
  ×0.9–1.1, saturation ×0.7–1.3); near-uniform crops (grey-level std < 12: black sky, blank wall)
  are drawn again. 16 train, 6 val, 20 test crops per class.
- ``textures`` — grey-level texture photos (brick, grass, gravel, moon surface) as the classes, the
  same region split; crops 30–100 % of the region's side, any of the 8 flips/quarter turns,
  brightness and contrast jitter. 16 train, 6 val, 25 test crops per class.
- ``photos-8shot`` — ``photos`` with 8 training crops per class (the same validation and test crops).

The split is the region split above, written as TL Studio's manifest (``make_split`` would mix crops
of one region into train and test); every contender trains on the same train/val files and is
scored on the same test files.

Contenders:

- ``lite0``: ``TrainingSession(TrainSettings(backbone="EfficientNetLite0"), ...)``, every default
  (224 px; probe on cached features, top two blocks fine-tuned, WiSE-FT);
- ``digits-cnn``: the same defaults with the sample's digits CNN as backbone (``demo_backbone``,
  trained here on the bundled digits with the demo's ``sample_settings``, as ``tlstudio demo`` does;
  32 px, its input size);
- ``scratch``: ``comparison.baseline_settings`` of the digits-CNN settings: the small CNN from random
  weights, every layer trained (what a user without a pretrained model gets);
- ``lite0-scratch`` (not in the default list): ``baseline_settings`` of the Lite0 defaults, Lite0
  from random weights at 224 px — every layer trained for 30 epochs: 15–25 minutes per task on one
  CPU core;
- ``guide``: the Keras guide "Transfer learning & fine-tuning" on the same Lite0 file: a new head on
  the frozen backbone (RandomFlip + RandomRotation(0.1), ``base(training=False)``, Dropout(0.2),
  Dense logits, Adam 1e-3) for 20 epochs, then the whole backbone unfrozen (BatchNorm still in
  inference mode) at Adam 1e-5 for 10 epochs; no early stopping (as the guide).

Each cell: test accuracy with its 95 % Wilson interval, wall time of the whole contender (training,
evaluation; no export), and against ``lite0``: the accuracy difference, McNemar's exact p on the
shared test images, and the wall-time ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from transfer_vs_guide import split_folders  # noqa: E402

from tlstudio.core.data.scan import file_sha256  # noqa: E402
from tlstudio.core.data.split import Manifest, ManifestEntry  # noqa: E402
from tlstudio.core.results.metrics import wilson_interval  # noqa: E402
from tlstudio.core.results.paired import mcnemar  # noqa: E402

SIZE = 224  # the saved crops' size, and Lite0's input
SHORT_SIDE = 384  # photos resized to this shorter side before the grid
GRID = 3
MIN_STD = 12.0
TASKS = {  # name: (files, grey, (train, val, test) per class, crop scale, regions (test, val))
    "photos": (
        (
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "hubble_deep_field.jpg",
            "motorcycle_left.png",
            "rocket.jpg",
        ),
        False,
        (16, 6, 20),
        (0.5, 1.0),
    ),
    "textures": (("brick.png", "grass.png", "gravel.png", "moon.png"), True, (16, 6, 25), (0.3, 1.0)),
    "photos-8shot": (None, False, (8, 6, 20), (0.5, 1.0)),  # photos' files and val/test crops
}
REGIONS = {"test": 3, "val": 2, "train": 4}  # of the GRID × GRID regions of each photo
CONTENDERS = ("lite0", "digits-cnn", "scratch", "guide")


# -- the tasks ---------------------------------------------------------------------------------------
def load_photo(path: Path, grey: bool) -> Image.Image:
    """The photo in RGB (grey ones as three equal channels), resized to SHORT_SIDE on its shorter side."""
    image = Image.open(path)
    image = image.convert("L").convert("RGB") if grey else image.convert("RGB")
    scale = SHORT_SIDE / min(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)


def regions_of(image: Image.Image, rng: np.random.Generator) -> dict[str, list[tuple[int, int, int, int]]]:
    """The photo's GRID × GRID regions (left, top, right, bottom), dealt to test, val and train."""
    w, h = image.size
    xs = np.linspace(0, w, GRID + 1).round().astype(int)
    ys = np.linspace(0, h, GRID + 1).round().astype(int)
    boxes = [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(GRID) for i in range(GRID)]
    order = rng.permutation(len(boxes))
    out, start = {}, 0
    for split, n in REGIONS.items():
        out[split] = [boxes[k] for k in order[start : start + n]]
        start += n
    return out


def jitter(crop: Image.Image, grey: bool, rng: np.random.Generator) -> Image.Image:
    """Flips (any of 8 for textures, mirror for photos) and colour jitter."""
    if grey:
        crop = crop.rotate(90 * int(rng.integers(4)))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.75, 1.25))
        return ImageEnhance.Contrast(crop).enhance(rng.uniform(0.75, 1.25))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    crop = ImageEnhance.Color(crop).enhance(rng.uniform(0.7, 1.3))
    pixels = np.asarray(crop, np.float32) * rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def random_crop(image, box, scale, grey, rng) -> Image.Image:
    """A jittered square crop inside ``box``, resized to SIZE; near-uniform ones are drawn again."""
    left, top, right, bottom = box
    side_max = min(right - left, bottom - top)
    for _ in range(50):
        side = int(side_max * rng.uniform(*scale))
        x = int(rng.integers(left, right - side + 1))
        y = int(rng.integers(top, bottom - side + 1))
        crop = image.crop((x, y, x + side, y + side))
        if np.asarray(crop.convert("L"), np.float32).std() >= MIN_STD:
            break
    return jitter(crop, grey, rng).resize((SIZE, SIZE), Image.BICUBIC)


def build_task(task: str, photos_dir: Path, out: Path, seed: int) -> tuple[Path, Manifest]:
    """The task's folder (one sub-folder per class) and its region split as a manifest."""
    files, grey, counts, scale = TASKS[task]
    if files is None:  # the few-shot variant: the photos task's crops, fewer of them for training
        files, grey, _, scale = TASKS["photos"]
    data = out / "data"
    entries = []
    for c, name in enumerate(files):
        label = Path(name).stem
        image = load_photo(photos_dir / name, grey)
        # one generator per photo and split, so the few-shot task gets the photos task's val/test crops
        regions = regions_of(image, np.random.default_rng([seed, c]))
        (data / label).mkdir(parents=True, exist_ok=True)
        for k, split in enumerate(("train", "val", "test")):
            rng = np.random.default_rng([seed, c, k])
            for i in range(counts[k]):
                box = regions[split][int(rng.integers(len(regions[split])))]
                path = data / label / f"{split}_{i:03d}.jpg"
                random_crop(image, box, scale, grey, rng).save(path, quality=92)
                entries.append(ManifestEntry(f"{label}/{path.name}", file_sha256(path), label, split))
    entries.sort(key=lambda e: (e.label, e.path))
    return data, Manifest(tuple(entries))


# -- the contenders -----------------------------------------------------------------------------------
def digits_cnn(work: Path) -> Path:
    """The sample's digits CNN: ``demo_backbone`` trained on the bundled digits with the demo's settings,
    its backbone (the layers up to Flatten) saved as a .keras file."""
    from tlstudio.core.data.sample import demo_backbone, sample_settings
    from tlstudio.core.training.session import TrainingSession
    from tlstudio.package_data import sample_dataset

    path = work / "digits_cnn.keras"
    if path.is_file():
        return path
    session = TrainingSession(
        sample_settings(demo_backbone(work / "demo-backbone")),
        sample_dataset(),
        work / "digits-run",
        export=False,
    )
    result = session.run()
    print(f"digits CNN: {result.status}, test accuracy {result.metrics.get('test_accuracy')} on the digits")
    session.model.get_layer("backbone").save(path)
    return path


def tlstudio_run(settings, data: Path, manifest: Manifest, run: Path) -> dict:
    """One TrainingSession (no export): test accuracy and per-image right/wrong by path."""
    from tlstudio.core.training.session import TrainingSession

    result = TrainingSession(settings, data, run, manifest=manifest, export=False, overwrite=True).run()
    if result.status not in ("completed", "failed_to_learn"):
        raise RuntimeError(f"{run.name}: {result.status}: {result.error}")
    evaluation = json.loads((run / "evaluation.json").read_text())
    right = {p["path"]: p["true"] == p["predicted"] for p in evaluation["predictions"]}
    epochs = json.loads((run / "history.json").read_text())["epochs"]
    phases = {}
    for e in epochs:
        phases[e["phase"]] = phases.get(e["phase"], 0) + 1
    notes = {k: result.metrics[k] for k in ("best_epoch", "wise_alpha") if k in result.metrics}
    return {"right": right, "status": result.status, "epochs": len(epochs), "phases": phases, **notes}


def guide_two_phase(
    backbone_file: Path, folders: dict[str, Path], epochs: tuple[int, int], seed: int
) -> dict:
    """The Keras guide's recipe, both phases (as ``transfer_vs_guide.guide_recipe`` for the first)."""
    import keras

    keras.utils.set_random_seed(seed)
    load = dict(image_size=(SIZE, SIZE), batch_size=32, label_mode="int", seed=seed)
    train_ds = keras.utils.image_dataset_from_directory(folders["train"], shuffle=True, **load)
    val_ds = keras.utils.image_dataset_from_directory(folders["val"], shuffle=False, **load)
    test_ds = keras.utils.image_dataset_from_directory(folders["test"], shuffle=False, **load)
    n_classes = len(train_ds.class_names)
    test_files = [str(Path(p).relative_to(folders["test"])) for p in test_ds.file_paths]
    train_ds, val_ds, test_ds = (d.cache().prefetch(8) for d in (train_ds, val_ds, test_ds))

    pretrained = keras.models.load_model(backbone_file, compile=False)
    cut = next(layer for layer in reversed(pretrained.layers) if "pool" in type(layer).__name__.lower())
    base_model = keras.Model(pretrained.input, cut.output)
    base_model.trainable = False
    augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)])
    inputs = keras.Input((SIZE, SIZE, 3))
    x = base_model(augmentation(inputs), training=False)
    x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(inputs, keras.layers.Dense(n_classes)(x))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(), loss=loss, metrics=["accuracy"])
    model.fit(train_ds, epochs=epochs[0], validation_data=val_ds, verbose=0)
    base_model.trainable = True  # BatchNorm stays in inference mode: base_model(..., training=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss, metrics=["accuracy"])
    model.fit(train_ds, epochs=epochs[1], validation_data=val_ds, verbose=0)
    predicted = model.predict(test_ds, verbose=0).argmax(1)
    truth = np.concatenate([y.numpy() for _, y in test_ds])
    right = {f: bool(p == t) for f, p, t in zip(test_files, predicted, truth, strict=True)}
    return {
        "right": right,
        "status": "completed",
        "epochs": sum(epochs),
        "phases": {"head": epochs[0], "fine-tune all": epochs[1]},
    }


def run_contender(who: str, data: Path, manifest: Manifest, work: Path, args, cnn: Path) -> dict:
    from tlstudio.core.backbone.efficientnet_lite import ensure_ported
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.comparison import baseline_settings

    if who == "guide":
        folders = split_folders(data, manifest, work / "guide-split")
        epochs = tuple(int(e) for e in args.guide_epochs.split(","))
        return guide_two_phase(ensure_ported(), folders, epochs, args.seed)
    settings = {
        "lite0": lambda: TrainSettings(backbone="EfficientNetLite0", seed=args.seed),
        "lite0-scratch": lambda: baseline_settings(
            TrainSettings(backbone="EfficientNetLite0", seed=args.seed)
        ),
        "digits-cnn": lambda: TrainSettings(backbone=str(cnn), seed=args.seed),
        "scratch": lambda: baseline_settings(TrainSettings(backbone=str(cnn), seed=args.seed)),
    }[who]()
    return tlstudio_run(settings, data, manifest, work / f"run-{who}")


# -- the table ----------------------------------------------------------------------------------------
def accuracy_cell(right: dict[str, bool]) -> tuple[float, float, float]:
    k, n = sum(right.values()), len(right)
    low, high = wilson_interval(k, n)
    return k / n, low, high


def table(rows: list[dict], contenders: list[str]) -> str:
    lines = [
        "| task | who | test acc (95 % Wilson) | Δ vs lite0 | McNemar p | wall s | × lite0 s | epochs |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        ref = row["contenders"].get("lite0")
        for who in contenders:
            r = row["contenders"].get(who)
            if r is None:
                continue
            acc, low, high = accuracy_cell(r["right"])
            delta = p_cell = ratio = "—"
            if ref is not None and who != "lite0":
                ref_acc = accuracy_cell(ref["right"])[0]
                keys = sorted(ref["right"])
                assert sorted(r["right"]) == keys, "contenders scored on different test files"
                _, _, p = mcnemar([r["right"][k] for k in keys], [ref["right"][k] for k in keys])
                delta = f"{100 * (acc - ref_acc):+.1f} pt"
                p_cell = f"{p:.3f}" if p >= 0.001 else "<0.001"
                ratio = f"{r['seconds'] / ref['seconds']:.2f}"
            lines.append(
                f"| {row['task']} ({row['sizes']}) | {who} | {acc:.3f} ({low:.3f}–{high:.3f}) | {delta} | "
                f"{p_cell} | {r['seconds']:.0f} | {ratio} | {r['epochs']} |"
            )
    return "\n".join(lines)


def machine() -> str:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").is_file()
        else platform.processor()
    )
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
    import tensorflow as tf

    return (
        f"{cpu}, {os.cpu_count()} cores, TF intra-op threads {threads}, "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}"
    )


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="folder of the photos (scikit-image's skimage/data)")
    parser.add_argument("--tasks", default="photos,textures,photos-8shot")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--guide-epochs", default="20,10", help="head epochs, fine-tune epochs")
    parser.add_argument("--seed", type=int, default=42, help="TL Studio's default seed")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument(
        "--per-class", help="TRAIN,VAL,TEST crops per class for every task (default: each task's own)"
    )
    args = parser.parse_args()
    if args.per_class:
        counts = tuple(int(n) for n in args.per_class.split(","))
        for task, (files, grey, own, scale) in TASKS.items():
            TASKS[task] = (files, grey, (min(own[0], counts[0]), *counts[1:]), scale)
    contenders = args.contenders.split(",")
    tasks = args.tasks.split(",")
    for task in tasks:
        files = TASKS[task][0] or TASKS["photos"][0]
        if missing := [f for f in files if not (args.photos / f).is_file()]:
            parser.error(f"{args.photos} lacks {', '.join(missing)} (see this script's docstring)")
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()

    work = args.keep or Path(tempfile.mkdtemp(prefix="tlstudio-offline-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"commit {commit()} · {machine()}", flush=True)
    rows = []
    try:
        cnn = digits_cnn(work) if {"digits-cnn", "scratch"} & set(contenders) else None
        for task in tasks:
            folder = work / task
            shutil.rmtree(folder, ignore_errors=True)
            data, manifest = build_task(task, args.photos, folder, args.seed)
            counts = manifest.counts()
            sizes = "/".join(str(sum(counts[s].values())) for s in ("train", "val", "test"))
            row = {"task": task, "sizes": sizes, "contenders": {}}
            for who in contenders:
                start = time.perf_counter()
                r = run_contender(who, data, manifest, folder, args, cnn)
                r["seconds"] = time.perf_counter() - start
                row["contenders"][who] = r
                acc, low, high = accuracy_cell(r["right"])
                print(
                    f"  {task:13} {who:13} acc {acc:.3f} ({low:.3f}–{high:.3f})  {r['seconds']:6.0f} s  "
                    f"{r['status']} epochs {r['phases']} best epoch {r.get('best_epoch', '-')} "
                    f"WiSE α {r.get('wise_alpha', '-')}",
                    flush=True,
                )
            rows.append(row)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + table(rows, contenders))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
