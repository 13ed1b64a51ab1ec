"""Start-up time to a painted window, next to a bare PySide6 window, and the event loop while
TensorFlow loads.

Run:  python benchmarks/bench_startup.py [--repeat 5] [--offscreen]

By default it measures under a real X server: the one in DISPLAY, or an Xvfb it starts (1366×768)
when there is none. Each figure is the median wall time from starting the process to the window's
first paint having been processed (``TLSTUDIO_STARTUP_PROBE=paint``: the app prints
``window-painted`` there and quits); the same for a bare PySide6 ``QMainWindow`` in the same run;
and ``tlstudio --help`` and ``python -c pass`` for scale. Then the app once more with
``TLSTUDIO_STARTUP_PROBE=stall``: a 5 ms timer on the GUI thread from the first paint until
TensorFlow has loaded in the background; its worst and 99th-percentile delays are the stalls a
user would feel while the window is already up. A fresh user profile each run (XDG dirs in a temp
folder), a warm file cache (one run first, not counted).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = """
import sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
w = QMainWindow()
w.resize(1280, 720)
class Probe(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and obj is w:
            w.removeEventFilter(self)
            QTimer.singleShot(0, lambda: (print("window-painted", flush=True), w.close()))
        return False
probe = Probe()
w.installEventFilter(probe)
w.show()
app.exec()
"""


def run_until(command: list[str], env: dict[str, str], expect: str | None) -> tuple[float, str]:
    """(seconds until a line containing ``expect`` was printed, that line), or until exit."""
    start = time.perf_counter()
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
    ) as proc:
        for line in proc.stdout:
            if expect is not None and expect in line:
                elapsed = time.perf_counter() - start
                if expect != "stall":
                    proc.kill()
                return elapsed, line.strip()
        proc.wait()
    if expect is not None:
        raise SystemExit(f"{command}: never printed {expect!r}")
    return time.perf_counter() - start, ""


def x_server(env: dict[str, str]) -> subprocess.Popen | None:
    """An Xvfb on :97 when there is no DISPLAY (returned, to stop), else None."""
    if env.get("DISPLAY"):
        return None
    if not shutil.which("Xvfb"):
        raise SystemExit("no DISPLAY and no Xvfb: install xvfb, or pass --offscreen")
    server = subprocess.Popen(["Xvfb", ":97", "-screen", "0", "1366x768x24", "-nolisten", "tcp"])
    time.sleep(1.0)
    env["DISPLAY"] = ":97"
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--offscreen", action="store_true", help="Qt's offscreen platform, no X server")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tlstudio-startup-"))
    env = dict(os.environ, XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"))
    env["QT_QPA_PLATFORM"] = "offscreen" if args.offscreen else "xcb"
    server = None if args.offscreen else x_server(env)
    python = [sys.executable]
    try:
        rows = {
            "python -c pass": ([*python, "-c", "pass"], None, {}),
            "tlstudio --help": ([*python, "-m", "tlstudio", "--help"], None, {}),
            "bare PySide6 window (painted)": ([*python, "-c", BARE], "window-painted", {}),
            "tlstudio window (painted)": (
                [*python, "-m", "tlstudio"],
                "window-painted",
                {"TLSTUDIO_STARTUP_PROBE": "paint"},
            ),
        }
        where = "offscreen" if args.offscreen else f"X server {env['DISPLAY']}"
        print(f"median of {args.repeat} runs, {os.cpu_count()} CPUs, {where}")
        medians = {}
        for name, (command, expect, extra) in rows.items():
            run_until(command, {**env, **extra}, expect)  # warm the file cache
            times = [run_until(command, {**env, **extra}, expect)[0] for _ in range(args.repeat)]
            medians[name] = statistics.median(times)
            print(f"  {name:<32} {medians[name]:6.2f} s   (min {min(times):.2f}, max {max(times):.2f})")
        ratio = medians["tlstudio window (painted)"] / medians["bare PySide6 window (painted)"]
        print(f"  TL Studio / bare window: {ratio:.2f}×")
        print("  event loop while TensorFlow loads after the first paint (ms), runs interleaved:")
        for _ in range(args.repeat):
            for name, extra in (("preloaded", {}), ("plain import", {"TLSTUDIO_NO_PRELOAD": "1"})):
                probe = {**env, **extra, "TLSTUDIO_STARTUP_PROBE": "stall"}
                print(f"    {name:<13} {run_until([*python, '-m', 'tlstudio'], probe, 'stall')[1]}")
    finally:
        if server is not None:
            server.terminate()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
