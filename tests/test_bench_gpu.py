"""benchmarks/bench_gpu.py runs on a CPU too (tiny settings) and reports every figure and ratio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_gpu_benchmark_runs_on_a_cpu_and_reports_ratios(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_gpu.py"),
            "--images",
            "40",
            "--size",
            "32",
            "--batch",
            "8",
            "--steps",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["device"] == "CPU" and result["gpus"] == []
    rates = result["images_per_second"]
    assert set(rates) == {
        "compute_float32",
        "compute_mixed_float16",
        "pipeline_alone",
        "training_streaming_float32",
    }
    assert all(v > 0 for v in rates.values())
    ratios = result["ratios"]
    assert ratios["mixed_over_float32"] == pytest.approx(
        rates["compute_mixed_float16"] / rates["compute_float32"], rel=0.01
    )
    assert 0 <= ratios["input_wait_share"] < 1 and ratios["feature_cache_speedup"] > 0
