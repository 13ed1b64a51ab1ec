"""Light and dark themes, chosen in the View menu and kept for the next start."""

from __future__ import annotations

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from tlstudio.gui.theme import apply_theme


def test_dark_and_light_palettes(qapp):
    try:
        assert apply_theme(qapp, "dark") == "dark"
        assert qapp.palette().color(QPalette.ColorRole.Window).lightness() < 80
        assert qapp.palette().color(QPalette.ColorRole.WindowText).lightness() > 180
        assert apply_theme(qapp, "light") == "light"
        assert qapp.palette().color(QPalette.ColorRole.Window).lightness() > 180
        assert "padding" in qapp.styleSheet()  # the spacing rules on top of Fusion
    finally:
        apply_theme(qapp, "light")


def test_the_view_menu_sets_and_remembers_the_theme(window):
    view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    names = [a.text() for a in view.actions()]
    assert names == ["System theme", "Light theme", "Dark theme"]
    try:
        view.actions()[2].trigger()
        assert window.qsettings.value("view/theme") == "dark"
        assert QApplication.instance().palette().color(QPalette.ColorRole.Base).lightness() < 80
    finally:
        window.set_theme("light")
