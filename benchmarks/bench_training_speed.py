"""Training throughput, side by side in one run.

Run:  python benchmarks/bench_training_speed.py [--images 2000] [--size 96] [--epochs 4] [--repeats 3]

1. Pipeline parity: full fine-tuning (every layer trainable, no augmentation) of the same
   MobileNetV3Small (random weights: no download) on the same folder of JPEGs, same image size and
   batch size — a TL Studio ``TrainingSession`` against the plain Keras script a practitioner would
   write (``image_dataset_from_directory`` + ``cache`` + ``prefetch`` + ``model.fit``). Images/s over
   the epochs after the first (both cache decoded images in memory during the first), in
   interleaved rounds; the median ratio is reported, because this machine's throughput drifts by
   ±25% between minutes. A third contender, the plain script with a callback reading the loss after
   every batch (as TL Studio's live curve does), shows what that costs.
2. Frozen backbone: the head phase with the backbone frozen and augmentation off, with and without
   the frozen-feature cache. Seconds per epoch after the first.
3. Memory: peak resident memory of a streaming run (cache "none", the frozen-feature cache off) on
   a quarter of the images and on all of them, each in a fresh process (see bench_memory_scale.py
   for 20,000 images).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from synthetic import build_folder  # noqa: E402


def keras_script(data: Path, size: int, batch: int, epochs: int, per_batch: bool = False) -> list[float]:
    """The hand-written baseline; returns seconds per epoch. ``per_batch`` adds a callback that reads
    the loss after every batch, as TL Studio's live curve does (to measure what that costs)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    ds = keras.utils.image_dataset_from_directory(
        data, image_size=(size, size), batch_size=batch, seed=0, shuffle=True, verbose=False
    )
    ds = ds.cache().prefetch(tf.data.AUTOTUNE)
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(size, size, 3), include_preprocessing=True
    )
    inputs = keras.Input((size, size, 3))
    x = backbone(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    times = EpochTimes()
    callbacks = [times]
    if per_batch:
        callbacks.append(
            keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: float(logs["loss"]))
        )
    model.fit(ds, epochs=epochs, callbacks=callbacks, verbose=0)
    return times.seconds


def tlstudio_run(data: Path, out: Path, size: int, batch: int, epochs: int, **changes) -> list[float]:
    """A TL Studio session; returns seconds per epoch from its history."""
    from tlstudio.core.freeze_plan import FreezePlan
    from tlstudio.core.settings import Augmentation, TrainSettings
    from tlstudio.core.training.session import TrainingSession

    settings = TrainSettings(
        backbone="MobileNetV3Small",
        weights="none",
        image_size=size,
        batch_size=batch,
        epochs=epochs,
        fine_tune_epochs=0,
        early_stopping_patience=epochs,
        augmentation=Augmentation(flip=False, rotation=0.0),
        freeze=FreezePlan("none", train_batchnorm=True),
        val_fraction=0.0,
        test_fraction=0.0,
        cache="memory",
    ).but(**changes)
    result = TrainingSession(settings, data, out, export=False, overwrite=True).run()
    if result.status not in ("completed", "failed_to_learn"):  # random weights: timing is what counts
        raise SystemExit(f"TL Studio run {result.status}: {result.error}")
    history = json.loads((out / "history.json").read_text())
    return [e["seconds"] for e in history["epochs"]]


class EpochTimes:
    """A Keras callback collecting seconds per epoch (made lazily to keep Keras out of import)."""

    def __new__(cls):
        import keras

        class _Times(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return _Times()


def rate(seconds: list[float], n: int) -> float:
    """Images per second over the epochs after the first."""
    later = seconds[1:]
    return n * len(later) / sum(later)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of part 1 (3)")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.gettempdir()) / "tlstudio-bench-speed"
    data = build_folder(work / f"data-{args.images}-{args.size}", args.images, args.size)
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tlstudio.core.training.session import describe_device

    print(
        f"{args.images} JPEGs {args.size}x{args.size}, batch {args.batch}, {args.epochs} epochs, "
        f"{describe_device()}"
    )

    contenders = {
        "plain Keras script": lambda: keras_script(data, args.size, args.batch, args.epochs),
        "plain Keras + per-batch callback": lambda: keras_script(
            data, args.size, args.batch, args.epochs, per_batch=True
        ),
        "TL Studio session": lambda: tlstudio_run(
            data, work / "run-full", args.size, args.batch, args.epochs
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(args.repeats):  # interleaved, so a slow spell of the machine hits every contender
        for name, run in contenders.items():
            rates[name].append(rate(run(), args.images))
        print(f"   round {r + 1}: " + ", ".join(f"{n} {v[-1]:.0f}" for n, v in rates.items()), flush=True)
    names = list(contenders)
    ratios = [o / k for o, k in zip(rates[names[2]], rates[names[0]], strict=True)]
    synced = [o / k for o, k in zip(rates[names[2]], rates[names[1]], strict=True)]
    print(
        f"\n1. Full fine-tuning, images/s after the first epoch (median of {args.repeats} interleaved rounds)"
    )
    for name in names:
        rounds = ", ".join(f"{v:.0f}" for v in rates[name])
        print(f"   {name:<34} {np.median(rates[name]):8.1f}   (rounds: {rounds})")
    rounds = ", ".join(f"{x:.2f}" for x in ratios)
    print(
        f"   ratio TL Studio / Keras: median {np.median(ratios):.2f}x (rounds {rounds}); "
        f"/ Keras with the callback: median {np.median(synced):.2f}x"
    )

    from tlstudio.core.freeze_plan import FreezePlan
    from tlstudio.core.settings import Augmentation

    # the default head phase (the linear probe on cached features) against the head trained with the
    # optimizer through the frozen backbone every epoch (--no-feature-cache), default augmentation both
    frozen = {"freeze": FreezePlan("all"), "augmentation": Augmentation()}
    full = tlstudio_run(
        data, work / "run-frozen-full", args.size, args.batch, args.epochs, feature_cache=False, **frozen
    )
    probe = tlstudio_run(data, work / "run-frozen-cached", args.size, args.batch, args.epochs, **frozen)
    per_epoch = float(np.mean(full[1:]))
    print("\n2. Frozen backbone (head phase), default settings")
    print(f"   recomputing the backbone: {per_epoch:8.3f} s per epoch after the first")
    print(
        f"   default: the linear probe on cached features, the whole phase (features computed once, "
        f"then L-BFGS to convergence): {probe[0]:.3f} s"
    )
    print(
        f"   the whole probe phase against one epoch through the backbone: {per_epoch / probe[0]:.1f}x; "
        f"against the 20 epochs a head phase used to run: {20 * per_epoch / probe[0]:.0f}x"
    )

    if not args.skip_memory:
        from bench_memory_scale import peak_memory_mb

        quarter, _ = peak_memory_mb(data, work / "run-mem-q", args.size, args.batch, args.images // 4)
        whole, _ = peak_memory_mb(data, work / "run-mem-all", args.size, args.batch, args.images)
        print("\n3. Peak memory of a streaming run (cache none), fresh process each")
        print(f"   {args.images // 4:>6} images  {quarter:8.0f} MB")
        print(
            f"   {args.images:>6} images  {whole:8.0f} MB   (ratio {whole / quarter:.2f}x for 4x the images)"
        )


if __name__ == "__main__":
    main()
