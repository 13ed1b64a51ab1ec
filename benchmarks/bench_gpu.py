"""GPU throughput, side by side in one run: float32 against mixed precision, the input pipeline's
share (is the GPU starved?), and the frozen-feature cache. Runs on a CPU too (then mixed precision
is expected to be slower: the figures say so rather than hide it).

Run:  python benchmarks/bench_gpu.py [--images 1024] [--size 96] [--batch 32] [--steps 20] [--json]
      (on a GPU: --images 4096 --size 224 --batch 64)

Every figure is images per second over ``--steps`` training steps after a warm-up epoch, for the
same MobileNetV3Small classifier (random weights: nothing is downloaded), every layer trained:

1. compute, float32: batches held in memory (no input work at all);
2. compute, mixed float16: the same, with Keras' mixed_float16 policy (loss scaling on);
3. input pipeline alone: TL Studio's tf.data pipeline (decode, resize, batch; no cache) read
   without training — what the disk and CPU can supply;
4. training fed by that pipeline (streaming, float32) — if it is well below (1), the GPU waits on
   input, and the ratio 1 − (4)/(1) is the time share lost to it;
5. head epoch with the backbone frozen, through the backbone against on cached features (the
   frozen-feature cache): seconds per epoch and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from synthetic import build_folder  # noqa: E402


def classifier(size: int, classes: int, trainable: bool = True):
    """MobileNetV3Small (random weights) with TL Studio's head, compiled."""
    import keras

    from tlstudio.core.backbone.classifier import build_classifier
    from tlstudio.core.backbone.registry import build_backbone, resolve_backbone

    spec = resolve_backbone("MobileNetV3Small")
    backbone = build_backbone(spec, weights="none", image_size=size)
    backbone.trainable = trainable
    model = build_classifier(backbone, classes, size, preprocessing=spec.preprocessing)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def fit_rate(model, dataset, steps: int, batch: int) -> float:
    """Images/s of ``model.fit`` over ``steps`` steps after one warm-up epoch of ``steps``."""
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)  # graphs built, caches warm
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - started)


def in_memory(size: int, batch: int, classes: int):
    import tensorflow as tf

    x = tf.random.uniform((batch, size, size, 3), 0, 255)
    y = tf.random.uniform((batch,), 0, classes, tf.int32)
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import keras
    import numpy as np

    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.pipeline import make_dataset
    from tlstudio.core.data.split import SplitConfig, make_split
    from tlstudio.core.training import devices
    from tlstudio.core.training.feature_cache import feature_extractor

    devices.enable_memory_growth()
    gpus = devices.list_gpus()
    where = devices.describe_device("auto", gpus)
    work = Path(tempfile.gettempdir()) / "tlstudio-bench-gpu"
    data = build_folder(work / f"data-{args.images}-{args.size}", args.images, args.size)
    manifest = make_split(inspect_folder(data).images, SplitConfig(0.0, 0.0, 0))
    classes = manifest.classes
    size, batch, steps = args.size, args.batch, args.steps
    streaming = make_dataset(
        manifest.entries, data, classes, size, batch, training=True, cache="none"
    ).repeat()

    figures: dict[str, float] = {}
    keras.utils.set_random_seed(0)
    figures["compute_float32"] = fit_rate(
        classifier(size, len(classes)), in_memory(size, batch, len(classes)), steps, batch
    )
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        mixed = classifier(size, len(classes))
        figures["compute_mixed_float16"] = fit_rate(mixed, in_memory(size, batch, len(classes)), steps, batch)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    reader = iter(streaming)
    next(reader)
    started = time.perf_counter()
    for _ in range(steps):
        next(reader)
    figures["pipeline_alone"] = steps * batch / (time.perf_counter() - started)
    figures["training_streaming_float32"] = fit_rate(classifier(size, len(classes)), streaming, steps, batch)

    frozen = classifier(size, len(classes), trainable=False)
    frozen.fit(in_memory(size, batch, len(classes)), steps_per_epoch=steps, epochs=1, verbose=0)  # warm-up
    started = time.perf_counter()
    frozen.fit(in_memory(size, batch, len(classes)), steps_per_epoch=steps, epochs=1, verbose=0)
    through_backbone = time.perf_counter() - started
    extractor = feature_extractor(frozen)  # preprocessing, backbone, pooling: what the cache stores
    features = extractor.predict(np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)), verbose=0)
    head = keras.Sequential(
        [keras.Input(features.shape[1:]), keras.layers.Dense(len(classes), activation="softmax")]
    )
    head.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    labels = np.arange(batch) % len(classes)
    head.fit(features, labels, epochs=1, verbose=0)
    started = time.perf_counter()
    for _ in range(steps):
        head.train_on_batch(features, labels)
    on_features = time.perf_counter() - started

    ratios = {
        "mixed_over_float32": figures["compute_mixed_float16"] / figures["compute_float32"],
        "pipeline_supply_over_demand": figures["pipeline_alone"] / figures["compute_float32"],
        "input_wait_share": max(0.0, 1 - figures["training_streaming_float32"] / figures["compute_float32"]),
        "feature_cache_speedup": through_backbone / on_features,
    }
    result = {
        "device": where,
        "gpus": [g.to_dict() for g in gpus],
        "images": args.images,
        "image_size": size,
        "batch": batch,
        "steps": steps,
        "images_per_second": {k: round(v, 1) for k, v in figures.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{where}: MobileNetV3Small at {size} px, batch {batch}, {steps} steps after a warm-up\n")
    for name, value in figures.items():
        print(f"  {name.replace('_', ' '):<30} {value:9.1f} images/s")
    r = ratios
    print(
        f"\n  mixed float16 / float32: {r['mixed_over_float32']:.2f}×"
        f"\n  the pipeline supplies {r['pipeline_supply_over_demand']:.2f}× what float32 training consumes"
        f" ({'enough' if r['pipeline_supply_over_demand'] >= 1 else 'the device is starved'})"
        f"\n  share of training time waiting on input (streaming): {r['input_wait_share']:.0%}"
        f"\n  frozen-feature cache: a head epoch {r['feature_cache_speedup']:.1f}× faster on cached features"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
