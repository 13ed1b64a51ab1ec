"""Light and dark themes: Qt's Fusion style everywhere, a palette that follows the system's colour
scheme (or the user's choice, kept in QSettings), and a little spacing."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")
SPACING = """
QPushButton { padding: 4px 12px; }
QGroupBox { font-weight: bold; margin-top: 8px; }
QGroupBox::title { subcontrol-origin: margin; left: 6px; padding: 0 4px; }
QListWidget#steps::item { padding: 6px 4px; }
"""


def dark_palette() -> QPalette:
    """Fusion's colours on dark grey, with readable disabled and link colours."""
    p = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#2b2d30",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1e1f22",
        QPalette.ColorRole.AlternateBase: "#2b2d30",
        QPalette.ColorRole.ToolTipBase: "#3c3f41",
        QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.PlaceholderText: "#8c8c8c",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#3c3f41",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: "#3574f0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6ea8fe",
    }
    for role, colour in colours.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return p


def system_is_dark() -> bool:
    """Whether the system asks for a dark colour scheme (Qt 6.5+ reads it from the platform)."""
    hints = QGuiApplication.styleHints()
    return hasattr(hints, "colorScheme") and hints.colorScheme() == Qt.ColorScheme.Dark


def apply_theme(app: QApplication, choice: str = "system") -> str:
    """Style the whole app; returns the theme in effect ("light" or "dark").

    Args:
        app: the application.
        choice: "system" (follow the platform), "light" or "dark".
    """
    app.setStyle("Fusion")
    dark = choice == "dark" or (choice == "system" and system_is_dark())
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    app.setStyleSheet(SPACING)
    return "dark" if dark else "light"
