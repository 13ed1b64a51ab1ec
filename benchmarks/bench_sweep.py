"""`tlstudio sweep` with 1 worker and with 2: trials, wall time, trials per worker, the best trial.

Run:  python benchmarks/bench_sweep.py [--trials 6] [--workers 1,2] [--epochs 3] [--threads 1]

The task: the bundled digits sample (400 images, 10 classes, 32 px) and the demo CNN trained from its
random start (`tlstudio demo`'s recipe, shortened to --epochs). Each worker is a `tlstudio sweep`
process with the default storage (SQLite in the sweep folder) and the default search space for one
backbone (learning rate, augmentation strength, fine-tune blocks); all workers start together and the
wall time runs from their start to the last one's end (the best trial's test scoring included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]


def run(workers: int, trials: int, epochs: int, threads: int, folder: Path, backbone: Path) -> dict:
    """One sweep with ``workers`` processes; its figures."""
    data = ROOT / "resources" / "sample_data" / "digits"
    out = folder / f"sweep-{workers}"
    command = [
        *(
            sys.executable,
            "-m",
            "tlstudio",
            "sweep",
            str(data),
            "--out",
            str(out),
            "--backbone",
            str(backbone),
        ),
        *("--trials", str(trials), "--epochs", str(epochs), "--fine-tune-epochs", "0", "--freeze", "none"),
        *("--no-flip", "--threads", str(threads), "--json"),
    ]
    env = dict(
        os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", "")
    )
    started = time.perf_counter()
    errors = [open(folder / f"worker-{workers}-{i}.err", "w+") for i in range(workers)]  # noqa: SIM115
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env, text=True) for err in errors
    ]
    outputs = [p.communicate()[0] for p in procs]
    seconds = time.perf_counter() - started
    for p, err in zip(procs, errors, strict=True):
        err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"a worker failed ({p.returncode}):\n{err.read()[-3000:]}")
        err.close()
    summary = json.loads(outputs[0])
    rows = [r for r in summary["trials_table"] if r["state"] == "complete"]
    per_worker: dict[str, int] = {}
    for r in rows:
        per_worker[r["worker"]] = per_worker.get(r["worker"], 0) + 1
    return {
        "workers": workers,
        "trials_complete": len(rows),
        "surplus_or_failed": len(summary["trials_table"]) - len(rows),
        "trials_per_worker": sorted(per_worker.values(), reverse=True),
        "wall_s": round(seconds, 1),
        "mean_trial_s": round(sum(r["seconds"] for r in rows) / len(rows), 1),
        "best_val_accuracy": summary["best"]["val_accuracy"],
        "best_test_accuracy": summary["best"]["test"]["test_accuracy"],
        "best_test_interval": [
            round(summary["best"]["test"]["test_accuracy_low"], 3),
            round(summary["best"]["test"]["test_accuracy_high"], 3),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per trial")
    args = parser.parse_args()
    from tlstudio.core.data.sample import demo_backbone

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        folder = Path(tmp)
        backbone = demo_backbone(folder / "backbone")
        for workers in (int(w) for w in args.workers.split(",")):
            print(
                json.dumps(run(workers, args.trials, args.epochs, args.threads, folder, backbone)), flush=True
            )


if __name__ == "__main__":
    main()
