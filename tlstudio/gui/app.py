"""Start the desktop app: the window first, TensorFlow afterwards in the background."""

from __future__ import annotations

import os
import sys
import time


def application_icon():
    """TL Studio's icon at every size it ships (window, task bar, about box)."""
    from PySide6.QtGui import QIcon

    from tlstudio.package_data import ICON_SIZES, icon_file

    icon = QIcon()
    for size in ICON_SIZES:
        icon.addFile(str(icon_file(size)))
    return icon


def main(argv: list[str] | None = None) -> int:
    """Show the main window (it loads TensorFlow in a worker thread once it is up)."""
    from tlstudio.gui.display_check import display_problem

    problem = display_problem()
    if problem:  # Qt would abort with "Reinstalling the application may fix this problem"
        print(problem, file=sys.stderr)
        return 2
    started = time.perf_counter()
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from tlstudio.gui.main_window import MainWindow

    QCoreApplication.setOrganizationName("TL Studio")
    QCoreApplication.setApplicationName("TL Studio")
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    args = list(argv or [])
    project = args[0] if args and args[0].endswith(".json") else None
    from tlstudio.gui.single_instance import ProjectServer, forward

    if project and forward(project):  # a TL Studio is running: it shows the project
        print(f"tlstudio: opened {project} in the running TL Studio")
        return 0
    app.setDesktopFileName("tlstudio")  # the menu entry of `tlstudio --install-desktop-entry`
    app.setWindowIcon(application_icon())
    from PySide6.QtCore import QSettings

    from tlstudio.gui.theme import apply_theme

    def theme() -> str:  # the View menu's choice, read each time: it may change while the app runs
        return str(QSettings().value("view/theme", "system"))

    apply_theme(app, theme())
    # the desktop switched between light and dark: that counts while the choice is "system"
    app.styleHints().colorSchemeChanged.connect(lambda _: apply_theme(app, theme()))
    window = MainWindow()
    probe = os.environ.get("TLSTUDIO_STARTUP_PROBE")
    if probe:  # benchmarks/bench_startup.py: report the first paint (and the stalls), then quit
        from tlstudio.gui.startup_probe import StartupProbe

        window.startup_probe = StartupProbe(window, probe)
    window.show()
    window.project_server = ProjectServer(window.open_forwarded, parent=window)
    if project:
        window.open_project(project)

    window.statusBar().showMessage(f"Window up in {time.perf_counter() - started:.2f} s", 4000)
    return app.exec()
