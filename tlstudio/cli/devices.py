"""`tlstudio devices`: the GPUs TensorFlow sees, and what a run would use on each."""

from __future__ import annotations

import argparse
import json

from tlstudio.cli.common import quiet_tensorflow


def add_parser(sub) -> None:
    """Register ``devices``."""
    p = sub.add_parser(
        "devices",
        help="list the GPUs TensorFlow sees (name, memory, compute capability) for --device",
        description="The devices a run can use (--device auto|cpu|gpu:N), whether mixed precision is "
        "on by default on each (--mixed-precision auto), and NVML's current utilisation where "
        "nvidia-ml-py is installed (the [gpu] extra).",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from tlstudio.core.training import devices, gpu_monitor

    growth = devices.enable_memory_growth()
    gpus = devices.list_gpus()
    rows = []
    for name in ["cpu"] + [f"gpu:{g.index}" for g in gpus]:
        mixed, why = devices.use_mixed_precision("auto", name, "default", gpus)
        rows.append(
            {
                "device": name,
                "describe": devices.describe_device(name, gpus),
                "mixed_precision": mixed,
                "why": why,
            }
        )
    samples = gpu_monitor.read()
    default = "gpu:0" if gpus else "cpu"  # what --device auto uses
    if args.json:
        print(
            json.dumps(
                {
                    "tensorflow": devices.tensorflow_version(),
                    "gpus": [g.to_dict() for g in gpus],
                    "devices": rows,
                    "default": default,
                    "memory_growth": growth is None,
                    "utilisation": [s.__dict__ for s in samples],
                },
                indent=2,
            )
        )
        return 0
    print(f"TensorFlow {devices.tensorflow_version()} sees {len(gpus)} GPU(s); --device auto uses {default}")
    for row in rows:
        precision = devices.precision_words(row["mixed_precision"], row["why"])
        print(f"  {row['device']:<7} {row['describe']} · {precision}")
    if gpus:
        print(f"  memory growth: {'on' if growth is None else growth}")
        print(f"  {gpu_monitor.describe(samples) or 'utilisation: install nvidia-ml-py (the [gpu] extra)'}")
    else:
        print("  no GPU: TensorFlow runs on the CPU (a CUDA GPU needs the [gpu] extra on Linux)")
    return 0
