"""Full fine-tuning against LoRA and BitFit (``--peft``) on a tiny ViT pretrained on a related task.

Run:  python benchmarks/bench_peft.py [--seeds 2] [--modes none,lora,bitfit] [--tasks shapes,textures-ood]
      [--per-class 30] [--unseen 50] [--fine-tune-epochs N] [--json FILE]

The source is a KerasHub ViT (32 px, patch 4, 4 blocks of width 64) trained here on drawn shapes
(``SHAPES_A``, 250 images a class) and saved with KerasHub's ``save_to_preset``: a user's own
transformer preset. Two target folders, a new one per seed:

- ``shapes``: five other drawn shapes (``SHAPES_C``): close to what the source saw;
- ``textures-ood``: five textures (``TEXTURES_B``): out of the source's distribution.

Each mode runs ``tlstudio train DATA --backbone PRESET --manifest M --seed S --peft MODE`` (the
defaults otherwise) on the same folder and split, and is scored through the exported SavedModel on
``--unseen`` fresh images a class. The trainable parameters of phase 2 come from ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from factory import SHAPES_A, SHAPES_C, TEXTURES_B, draw_any  # noqa: E402
from recipe_quality import SIZE, drawn_folder, score_saved_model, unseen_set  # noqa: E402

from tlstudio.core.data.health import inspect_folder  # noqa: E402
from tlstudio.core.data.split import make_split  # noqa: E402

TASKS = {"shapes": SHAPES_C, "textures-ood": TEXTURES_B}


def source_preset(work: Path, per_class: int = 250, epochs: int = 10) -> Path:
    """A tiny ViT trained on ``SHAPES_A`` and saved as a KerasHub preset folder (built once)."""
    folder = work / "source-vit"
    if (folder / "config.json").is_file():
        return folder
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(100)
    x = np.stack([draw_any(k, SIZE, rng) for k in SHAPES_A for _ in range(per_class)]).astype("float32")
    y = np.repeat(np.arange(len(SHAPES_A)), per_class)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128
    )
    inputs = keras.Input((SIZE, SIZE, 3))
    tokens = backbone(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs))
    outputs = keras.layers.Dense(len(SHAPES_A), activation="softmax")(tokens[:, 0])
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.AdamW(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    done = model.fit(x, y, epochs=epochs, batch_size=64, validation_split=0.15, shuffle=True, verbose=0)
    print(f"  source ViT: val accuracy {done.history['val_accuracy'][-1]:.3f} on its own shapes", flush=True)
    converter = keras_hub.layers.ViTImageConverter(image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1.0)
    classifier = keras_hub.models.ViTImageClassifier(
        backbone=backbone,
        num_classes=len(SHAPES_A),
        preprocessor=keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter),
    )
    classifier.save_to_preset(str(folder))
    return folder


def run_mode(preset: Path, data: Path, manifest: Path, run: Path, seed: int, mode: str, epochs) -> Path:
    """``tlstudio train`` with the defaults and ``--peft mode``; returns the run folder."""
    command = [sys.executable, "-m", "tlstudio", "train", str(data), "--backbone", str(preset)]
    command += ["--manifest", str(manifest), "--seed", str(seed), "--peft", mode, "--out", str(run)]
    if epochs is not None:
        command += ["--fine-tune-epochs", str(epochs)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"train failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--modes", default="none,lora,bitfit")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--unseen", type=int, default=50)
    parser.add_argument("--fine-tune-epochs", type=int, default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_peft"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    preset = source_preset(args.work)
    rows = []
    for task in args.tasks.split(","):
        kinds = TASKS[task]
        for seed in range(args.seeds):
            data = drawn_folder(args.work / f"{task}-data{seed}", kinds, [args.per_class] * len(kinds), seed)
            split = make_split(inspect_folder(data).images)  # as recipe_quality: the default split
            manifest = split.save(args.work / f"{task}-m{seed}.csv")
            x, y = unseen_set(kinds, args.unseen, seed)
            for mode in args.modes.split(","):
                start = time.perf_counter()
                run = args.work / f"{task}-{mode}-{seed}"
                run_mode(preset, data, manifest, run, seed, mode, args.fine_tune_epochs)
                saved = run / "saved_model"
                acc = score_saved_model(saved, x, y, kinds) if saved.is_dir() else 1 / len(kinds)
                record = json.loads((run / "run.json").read_text())
                peft = record.get("peft", {})
                row = {
                    "task": task,
                    "seed": seed,
                    "mode": mode,
                    "accuracy": acc,
                    "seconds": time.perf_counter() - start,
                    "trainable": peft.get("trainable_params"),
                    "full": peft.get("full_fine_tune_params"),
                }
                rows.append(row)
                print(
                    f"  {task:13} seed {seed}  {mode:6} accuracy {acc:.3f}  trainable {row['trainable']}"
                    f"  ({row['seconds']:.0f} s)",
                    flush=True,
                )
    print("\nmean unseen accuracy (seeds):")
    for task in args.tasks.split(","):
        for mode in args.modes.split(","):
            accs = [r["accuracy"] for r in rows if r["task"] == task and r["mode"] == mode]
            print(f"  {task:13} {mode:6} {np.mean(accs):.3f} ± {np.std(accs):.3f}  ({len(accs)} seeds)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
