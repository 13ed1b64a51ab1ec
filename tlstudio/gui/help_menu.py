"""The window's Help menu: the keyboard shortcuts (read from the menus themselves) and the About box."""

from __future__ import annotations

import platform

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox


def add_help_menu(window: QMainWindow) -> None:
    """Add Help ▸ Keyboard shortcuts and Help ▸ About TL Studio to ``window``'s menu bar."""
    menu = window.menuBar().addMenu("&Help")
    for text, slot in (
        (
            "&Keyboard shortcuts",
            lambda: QMessageBox.information(window, "Keyboard shortcuts", shortcuts_text(window)),
        ),
        ("&About TL Studio", lambda: QMessageBox.about(window, "About TL Studio", about_text(window))),
    ):
        action = QAction(text, window)
        action.triggered.connect(slot)
        menu.addAction(action)


def shortcuts_text(window: QMainWindow) -> str:
    """Every menu action that has a key, as an HTML table (so it is never out of date)."""
    rows = [
        f"<tr><td>{menu.title().replace('&', '')} ▸ {action.text().replace('&', '')}</td>"
        f"<td><b>{action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}</b></td></tr>"
        for menu in window.menuBar().findChildren(QMenu)
        for action in menu.actions()
        if not action.shortcut().isEmpty()
    ]
    return "<table cellpadding=3>" + "".join(rows) + "</table>"


def about_text(window) -> str:
    """The About box's words: the version, what it runs on, and where its files are.

    Args:
        window: the main window (its TensorFlow status, settings file and project).
    """
    import PySide6

    from tlstudio import __version__

    tensorflow = window.tf_status.text().removeprefix("TensorFlow ")
    return (
        f"<h3>TL Studio {__version__}</h3>"
        "<p>Transfer learning on your images, on your machine. Apache-2.0.</p>"
        f"<p>Python {platform.python_version()} · Qt {PySide6.__version__} · TensorFlow: {tensorflow}</p>"
        f"<p>Settings: <code>{window.qsettings.fileName()}</code><br>"
        f"Project: <code>{window.project.path or 'not saved yet'}</code></p>"
        "<p>The same work from a terminal: <code>tlstudio --help</code></p>"
    )
