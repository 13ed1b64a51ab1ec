"""Start-up time: `tlstudio` (window visible) and `tlstudio --help`, from the command.

Run:  python benchmarks/bench_startup.py [--repeat 5]

Each figure is the median wall time from starting the process to (a) the window having been shown
and its first event processed (TLSTUDIO_STARTUP_PROBE makes the app print and quit there), and
(b) `--help` having printed; next to a bare `python -c pass` for scale. Offscreen Qt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def timed(command: list[str], env: dict[str, str], expect: str | None = None) -> float:
    """Seconds until the process printed ``expect`` (then it is stopped), or until it exited."""
    start = time.perf_counter()
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        for line in proc.stdout:
            if expect is not None and expect in line:
                elapsed = time.perf_counter() - start
                proc.kill()
                return elapsed
        proc.wait()
    if expect is not None:
        raise SystemExit(f"{command}: never printed {expect!r}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TLSTUDIO_STARTUP_PROBE="1")
    python = [sys.executable]
    rows = {
        "python -c pass": ([*python, "-c", "pass"], None),
        "tlstudio --help": ([*python, "-m", "tlstudio", "--help"], None),
        "tlstudio (window shown)": ([*python, "-m", "tlstudio"], "window-shown"),
    }
    print(f"median of {args.repeat} runs, {os.cpu_count()} CPUs")
    for name, (command, expect) in rows.items():
        times = [timed(command, env, expect) for _ in range(args.repeat)]
        print(f"  {name:<26} {statistics.median(times):6.2f} s   (min {min(times):.2f})")


if __name__ == "__main__":
    main()
