"""Start the desktop app: the window first, TensorFlow afterwards in the background."""

from __future__ import annotations

import sys
import time


def describe_tensorflow() -> str:
    """Import TensorFlow (seconds) and say which device training will use."""
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tlstudio.core.training import describe_device

    return describe_device()


def main(argv: list[str] | None = None) -> int:
    """Show the main window, then load TensorFlow in a worker thread."""
    started = time.perf_counter()
    from PySide6.QtCore import QCoreApplication, QTimer
    from PySide6.QtWidgets import QApplication

    from tlstudio.gui.main_window import MainWindow
    from tlstudio.gui.worker import Task

    QCoreApplication.setOrganizationName("TL Studio")
    QCoreApplication.setApplicationName("TL Studio")
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    window = MainWindow()
    window.show()
    args = list(argv or [])
    if args and args[0].endswith(".json"):
        window.open_project(args[0])

    loader = Task(describe_tensorflow)
    loader.done.connect(
        lambda device: (
            window.tf_status.setText(f"TensorFlow ready · {device}"),
            window.train.device.setText(f"Device: {device}"),
        )
    )
    loader.failed.connect(
        lambda msg: window.tf_status.setText("TensorFlow failed to load: " + msg.splitlines()[0])
    )
    QTimer.singleShot(0, loader.start)
    window.statusBar().showMessage(f"Window up in {time.perf_counter() - started:.2f} s", 4000)
    code = app.exec()
    loader.wait()
    return code
