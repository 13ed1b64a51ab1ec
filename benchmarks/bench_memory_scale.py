"""Peak memory against the number of images: streaming from disk, and with an in-memory cache.

Run:  python benchmarks/bench_memory_scale.py [--images 20000] [--size 64] [--rounds 2]

Each run is a fresh process that trains one epoch of the head phase of MobileNetV3Small (random
weights: no download) through the full tf.data pipeline (the frozen-feature cache off, so every
image is decoded from disk and goes through the backbone), and reports its peak resident memory
(``ru_maxrss``). Streaming (cache "none") on a tenth of the images and on all of them, in
interleaved rounds (the median is reported: TensorFlow's own footprint varies between processes);
then the same with cache "memory", where the decoded pixels the user asked to keep are expected on top.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def peak_memory_mb(
    data: Path, out: Path, size: int, batch: int, limit: int, cache: str = "none"
) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a one-epoch run on ``limit`` of the images (evenly spread, so
    every class is in), in a fresh process."""
    code = f"""
import resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from tlstudio.core.data.health import inspect_folder
from tlstudio.core.data.split import make_split, SplitConfig
from tlstudio.core.settings import TrainSettings, Augmentation
from tlstudio.core.training.session import TrainingSession
report = inspect_folder({str(data)!r})
images = sorted(report.images, key=lambda r: r.path)
images = images[:: max(1, len(images) // {limit})][:{limit}]  # every class
manifest = make_split(images, SplitConfig(0.0, 0.0, 0))
s = TrainSettings(backbone="MobileNetV3Small", weights="none", image_size={size}, batch_size={batch},
                  epochs=1, fine_tune_epochs=0, cache={cache!r}, feature_cache=False,
                  augmentation=Augmentation(flip=False, rotation=0.0))
started = time.perf_counter()
r = TrainingSession(s, {str(data)!r}, Path({str(out)!r}), manifest=manifest, export=False).run()
assert r.status == "completed", r.error
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - started)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    peak, seconds = result.stdout.strip().splitlines()[-1].split()
    return float(peak), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic import build_folder

    work = Path(tempfile.gettempdir()) / "tlstudio-bench-memory"
    data = build_folder(work / f"data-{args.images}-{args.size}", args.images, args.size)
    small = args.images // 10
    print(
        f"{args.images} JPEGs {args.size}x{args.size}, batch {args.batch}, one epoch per run, fresh processes"
    )
    streaming: dict[int, list[float]] = {small: [], args.images: []}
    for r in range(args.rounds):
        for n in streaming:
            peak, seconds = peak_memory_mb(data, work / f"run-{n}", args.size, args.batch, n)
            streaming[n].append(peak)
            print(f"   round {r + 1}: streaming {n:>6} images  {peak:8.0f} MB  ({seconds:.0f} s)", flush=True)
    cached = {}
    for n in streaming:
        cached[n], seconds = peak_memory_mb(data, work / f"run-mem-{n}", args.size, args.batch, n, "memory")
        print(f"   cache memory {n:>6} images  {cached[n]:8.0f} MB  ({seconds:.0f} s)", flush=True)

    a, b = (float(np.median(v)) for v in streaming.values())
    pixels = (args.images - small) * args.size * args.size * 3 / 2**20
    print("\nPeak memory (median of rounds for streaming)")
    print(
        f"   streaming (cache none)  {small:>6} images {a:8.0f} MB   {args.images:>6} images {b:8.0f} MB   "
        f"ratio {b / a:.2f}x for {args.images // small}x the images"
    )
    print(
        f"   cache memory            {small:>6} images {cached[small]:8.0f} MB   {args.images:>6} images "
        f"{cached[args.images]:8.0f} MB   growth {cached[args.images] - cached[small]:.0f} MB "
        f"(decoded pixels of the extra images: {pixels:.0f} MB)"
    )


if __name__ == "__main__":
    main()
