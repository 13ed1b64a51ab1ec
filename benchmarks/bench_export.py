"""Size, CPU latency and accuracy of every deployment format, for two backbones side by side.

Run:  python benchmarks/bench_export.py [--backbones shapes-cnn,MobileNetV3Small] [--size 96]

Each backbone is trained on the same drawn-shapes folder (5 classes, 60 images each) with
`tlstudio train`, then `tlstudio export RUN --format all` converts it to every format and checks each
one in a fresh process with its own runtime (LiteRT interpreter, onnxruntime, OpenVINO, TensorFlow.js
in Node, plain TensorFlow) on the run's test images; a format not made on this machine (Core ML off
macOS, TF.js without Node.js) is listed as skipped with the reason, side by side with the rest.
``shapes-cnn`` is a small CNN pretrained on other shapes and saved as .keras (a user's own model);
Keras Applications backbones are trained from random weights (no ImageNet download here), so their
accuracy is low — their size and latency are what this compares.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factory import SHAPES_A, SHAPES_C, make_drawn_dataset, pretrain_source_model  # noqa: E402


def train(work: Path, backbone: str, size: int, data: Path) -> Path:
    run = work / f"run-{backbone.replace('/', '_')}"
    if backbone == "shapes-cnn":
        source, _ = pretrain_source_model(work / "shapes.keras", SHAPES_A, size=size, per_class=150, epochs=6)
        args = ["--backbone", str(source)]
    else:
        args = ["--backbone", backbone, "--weights", "none", "--image-size", str(size)]
    command = [sys.executable, "-m", "tlstudio", "train", str(data), *args, "--out", str(run)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 3):
        raise RuntimeError(done.stderr[-3000:])
    if not (run / "model.keras").is_file():  # failed_to_learn exports nothing: export the checkpoint
        raise RuntimeError(f"{backbone}: the run exported nothing ({done.stderr.strip().splitlines()[-3:]})")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="shapes-cnn,MobileNetV3Small")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=60)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tlstudio-bench-export-"))
    try:
        data = make_drawn_dataset(work / "data", SHAPES_C, per_class=args.per_class, size=args.size, seed=0)
        columns = ("backbone", "format", "size", "ms/image p50 (p95)", "img/s @32", "agreement", "accuracy")
        print("| " + " | ".join(columns) + " |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for backbone in args.backbones.split(","):
            run = train(work, backbone, args.size, data)
            command = [sys.executable, "-m", "tlstudio", "export", str(run), "--format", "all", "--json"]
            done = subprocess.run(command, capture_output=True, text=True)
            for r in json.loads(done.stdout):
                v = r["verification"]
                if r.get("skipped"):  # named, not made on this machine (Core ML, TF.js): the reason
                    print(f"| {backbone} | {r['name']} | skipped: {r['skipped']} | | | | |")
                    continue
                if v is None:
                    print(f"| {backbone} | {r['name']} | not written: {r['error']} | | | | |")
                    continue
                size = v["size_bytes"]
                size_text = f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"
                print(
                    f"| {backbone} | {r['name']} | {size_text} | {v['latency_ms_median']:.2f} "
                    f"({v['latency_ms_p95']:.2f}) | {v['throughput_images_per_second']:,.0f} | "
                    f"{v['agreement']:.1%} | {v['accuracy']:.3f} ({v['accuracy_change']:+.3f}) |",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
