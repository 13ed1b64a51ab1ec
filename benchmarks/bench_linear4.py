"""Does DINOv2's linear4 probe (``--probe-features last4``) beat the last block's class token?

Run:  python benchmarks/bench_linear4.py [--task shapes|glyphs] [--seeds 3] [--layers 6] [--json FILE]

A tiny KerasHub ViT (32 px, 4 px patches) is pretrained here on related classes (recipe_quality's
tasks: for ``shapes`` drawn circles, squares, triangles, crosses; ``glyphs``: letters) and saved with
KerasHub's ``save_to_preset``; then, per seed, a new 5-class folder of the task's target classes
(other shapes; digits; 30 images a class) is trained probe-only
(``fine_tune_epochs=0``) with ``probe_features`` last and last4 on the same split, and each run's
exported SavedModel is scored on 100 unseen images a class (balanced, so accuracy = balanced accuracy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from factory import draw_any, make_drawn_dataset  # noqa: E402
from recipe_quality import TASKS, score_saved_model, unseen_set  # noqa: E402

SIZE = 32


def pretrained_vit(folder: Path, kinds, layers: int, per_class: int = 400, epochs: int = 12) -> float:
    """Pretrain a tiny ViT on ``kinds`` and save its backbone as a KerasHub preset; returns its
    validation accuracy on its own classes."""
    import keras
    import keras_hub

    rng = np.random.default_rng(100)
    x = np.stack([draw_any(k, SIZE, rng) for k in kinds for _ in range(per_class)]).astype("float32")
    y = np.repeat(np.arange(len(kinds)), per_class)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=4, num_layers=layers, num_heads=4, hidden_dim=64, mlp_dim=128
    )
    inputs = keras.Input((SIZE, SIZE, 3))
    tokens = backbone(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs))  # the ViT's "tf" mode
    token = keras.layers.Flatten()(keras.layers.Cropping1D((0, int(tokens.shape[1]) - 1))(tokens))
    model = keras.Model(inputs, keras.layers.Dense(len(kinds), activation="softmax")(token))
    model.compile(keras.optimizers.AdamW(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=epochs, validation_split=0.15, verbose=0)
    backbone.save_to_preset(str(folder))
    return float(history.history["val_accuracy"][-1])


def probe_run(preset: Path, data: Path, run: Path, mode: str, seed: int) -> tuple[Path, float]:
    """A probe-only TL Studio run; returns its SavedModel folder and seconds."""
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.session import TrainingSession

    settings = TrainSettings(
        backbone=str(preset), image_size=SIZE, fine_tune_epochs=0, probe_features=mode, seed=seed
    )
    started = time.perf_counter()
    result = TrainingSession(settings, data, run).run()
    if result.status != "completed":
        raise RuntimeError(f"{mode} seed {seed}: {result.status} {result.error}")
    return run / "saved_model", time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[t for t, (source, _) in TASKS.items() if source], default="shapes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="linear4-"))
    preset = work / "vit"
    source, target = TASKS[args.task]
    accuracy = pretrained_vit(preset, source, args.layers)
    print(f"pretrained ViT: val accuracy {accuracy:.3f} on {args.task}' source classes", flush=True)
    rows = []
    for seed in range(args.seeds):
        data = make_drawn_dataset(work / f"data{seed}", target, per_class=30, size=SIZE, seed=seed)
        x, y = unseen_set(target, 100, seed)
        for mode in ("last", "last4"):
            saved, seconds = probe_run(preset, data, work / f"run-{mode}-{seed}", mode, seed)
            accuracy = score_saved_model(saved, x, y, target)
            rows.append({"seed": seed, "mode": mode, "accuracy": accuracy, "seconds": round(seconds, 1)})
            print(f"seed {seed} {mode:5s} accuracy {accuracy:.3f} ({seconds:.0f} s)", flush=True)
    for mode in ("last", "last4"):
        scores = [r["accuracy"] for r in rows if r["mode"] == mode]
        print(f"{mode:5s} mean {statistics.mean(scores):.3f} ({' / '.join(f'{s:.3f}' for s in scores)})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
