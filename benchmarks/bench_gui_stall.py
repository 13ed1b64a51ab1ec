"""How long does the GUI event loop stall while a training run is going?

Run:  python benchmarks/bench_gui_stall.py [--epochs 8]

The real window (offscreen) trains the demo CNN on the bundled digits in its worker thread, while a
5 ms QTimer on the GUI thread records when it actually fires. A stall is the delay beyond 5 ms.
Printed: worst stall, 99th percentile and median, over the whole run (model building, tracing,
every epoch and the export included); the same for a quiet window as the baseline, and for the
window right after start-up while TensorFlow loads in the background.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE_MS = 5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    from PySide6.QtCore import QElapsedTimer, QSettings, QStandardPaths, QTimer
    from PySide6.QtWidgets import QApplication

    from tlstudio.cli import demo_backbone
    from tlstudio.core.project import Project
    from tlstudio.gui.main_window import MainWindow
    from tlstudio.package_data import sample_dataset

    QStandardPaths.setTestModeEnabled(True)
    app = QApplication([])
    work = Path(tempfile.mkdtemp(prefix="tlstudio-stall-"))
    window = MainWindow(QSettings(str(work / "s.ini"), QSettings.Format.IniFormat))
    window.show()

    stalls: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def probe() -> None:
        now = clock.elapsed()
        stalls.append(max(0.0, now - last[0] - PROBE_MS))
        last[0] = now

    timer = QTimer()
    timer.setInterval(PROBE_MS)
    timer.timeout.connect(probe)

    def run_until(condition, seconds=600.0) -> None:
        end = time.time() + seconds
        while time.time() < end and not condition():
            app.processEvents()
            time.sleep(0.001)

    def measure(condition) -> list[float]:
        stalls.clear()
        last[0] = clock.elapsed()
        timer.start()
        run_until(condition)
        timer.stop()
        return list(stalls)

    loading = measure(lambda: window.backbone.ready)  # TensorFlow loads in the background
    backbone = demo_backbone(work)
    window.set_project(Project(path=work / "digits.tlstudio.json", data_dir=str(sample_dataset())))
    run_until(lambda: window.data.report is not None and window.backbone.ready)
    window.backbone.choose(str(backbone))
    run_until(lambda: window.layers.model.tree is not None)
    window.layers.all_trainable.click()
    window.train.form.epochs.setValue(args.epochs)
    window.train.form.fine_tune.setChecked(False)
    window.train.form.patience.setValue(args.epochs)

    deadline = time.time() + 3
    quiet = measure(lambda: time.time() > deadline)
    window.start_training()
    busy = measure(lambda: not window.train.is_running())
    window.close()

    print(f"GUI event-loop stalls (delay beyond a {PROBE_MS} ms timer), {os.cpu_count()} CPUs, offscreen Qt")
    print(f"{'':<28}{'probes':>8}{'worst ms':>10}{'p99 ms':>8}{'p50 ms':>8}")
    rows = (
        ("window while TF loads", loading),
        ("idle window (3 s)", quiet),
        (f"training run ({args.epochs} epochs)", busy),
    )
    for name, values in rows:
        print(
            f"{name:<28}{len(values):>8}{max(values):>10.1f}{percentile(values, 99):>8.1f}"
            f"{percentile(values, 50):>8.1f}"
        )
    worst = sorted(busy)[-5:]
    print("five worst stalls while training (ms):", ", ".join(f"{v:.0f}" for v in worst))


if __name__ == "__main__":
    main()
