"""Dataset doctor scan speed and memory, side by side with a naive full-decode scan.

Run:  python benchmarks/bench_scan.py [--images 20000] [--size 400x300]

Builds (once, under the system temp folder) a folder of N real JPEGs in 10 classes, then times in
one run: TL Studio's default scan (headers + structure checks + hashing + the looks: a decode at
reduced scale for the perceptual hash and quality measures), the same without the looks
(``scan_folder(looks=False)``, what the default was before near-duplicates), its --deep scan, and
the naive approach (decode every image to RGB with Pillow and hash it). The pictures are noise with
one distinct line each: the worst case for JPEG decoding (and all near-duplicates of each other).
Memory: tracemalloc peak of the default scan on a quarter of the folder and on all of it, per image.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tlstudio.core.data.scan import scan_folder


def build_folder(root: Path, n: int, size: tuple[int, int]) -> Path:
    """N distinct JPEGs in 10 class folders (reused if already there)."""
    done = root / f".complete-{n}-{size[0]}x{size[1]}"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    for i in range(n):
        folder = root / f"class_{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        arr = base.copy()
        arr[i % size[1], :, :] = i % 251  # make every file distinct
        Image.fromarray(arr).save(folder / f"img_{i:06d}.jpg", quality=85)
    done.touch()
    return root


def naive_scan(root: Path) -> int:
    """What a hand-written checker does: decode every file fully, then hash it."""
    count = 0
    for folder, _, files in os.walk(root):
        for name in files:
            if name.startswith("."):
                continue
            path = Path(folder, name)
            with Image.open(path) as img:
                img.convert("RGB")
            hashlib.sha256(path.read_bytes()).hexdigest()
            count += 1
    return count


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--size", default="400x300")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    root = Path(tempfile.gettempdir()) / f"tlstudio-bench-scan-{args.images}-{args.size}"
    t_build, _ = timed(build_folder, root, args.images, size)
    print(f"folder: {root} ({args.images} JPEGs of {args.size}; built in {t_build:.1f} s)")
    print(f"machine: {os.cpu_count()} CPUs")

    naive_scan(root)  # warm the page cache so every contender reads from memory
    t_quick, quick = timed(scan_folder, root)
    t_headers, _ = timed(scan_folder, root, looks=False)
    t_deep, deep = timed(scan_folder, root, deep=True)
    t_naive, n_naive = timed(naive_scan, root)
    assert len(quick.images) == len(deep.images) == n_naive == args.images

    print(f"\n{'scan':<34}{'seconds':>9}{'images/s':>11}{'vs naive':>10}")
    for name, t in [
        ("tlstudio inspect (default)", t_quick),
        ("  the same without looks", t_headers),
        ("tlstudio inspect --deep", t_deep),
        ("naive: decode every image + hash", t_naive),
    ]:
        print(f"{name:<34}{t:>9.2f}{args.images / t:>11.0f}{t_naive / t:>9.1f}x")

    sub = [d for d in sorted(root.iterdir()) if d.is_dir()]
    quarter = Path(tempfile.mkdtemp(prefix="tlstudio-quarter-"))
    for d in sub:
        (quarter / d.name).mkdir()
        for f in sorted(d.iterdir())[: len(list(d.iterdir())) // 4]:
            os.symlink(f, quarter / d.name / f.name)
    peaks = {}
    for label, folder in [("quarter", quarter), ("all", root)]:
        tracemalloc.start()
        result = scan_folder(folder)
        peaks[label] = (tracemalloc.get_traced_memory()[1], len(result.images))
        tracemalloc.stop()
    print("\nmemory (tracemalloc peak of the default scan, records of every image included):")
    for label, (peak, n) in peaks.items():
        print(f"  {label:<8} {n:>6} images  peak {peak / 1e6:7.1f} MB  = {peak / n:7.0f} bytes/image")
    ratio = (peaks["all"][0] / peaks["all"][1]) / (peaks["quarter"][0] / peaks["quarter"][1])
    print(f"  bytes per image, all vs quarter: {ratio:.2f}x (1.0 = memory grows only with the records)")


if __name__ == "__main__":
    main()
