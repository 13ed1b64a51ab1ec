"""Start the desktop app: the window first, TensorFlow afterwards in the background."""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    """Show the main window (it loads TensorFlow in a worker thread once it is up)."""
    started = time.perf_counter()
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from tlstudio.gui.main_window import MainWindow

    QCoreApplication.setOrganizationName("TL Studio")
    QCoreApplication.setApplicationName("TL Studio")
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    window = MainWindow()
    window.show()
    args = list(argv or [])
    if args and args[0].endswith(".json"):
        window.open_project(args[0])

    window.statusBar().showMessage(f"Window up in {time.perf_counter() - started:.2f} s", 4000)
    if os.environ.get("TLSTUDIO_STARTUP_PROBE"):  # benchmarks/bench_startup.py: report, then quit
        from PySide6.QtCore import QTimer

        def report() -> None:
            print("window-shown", flush=True)
            window.close()

        QTimer.singleShot(0, report)
    return app.exec()
