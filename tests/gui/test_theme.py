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


def test_the_curves_follow_the_theme_and_count_whole_epochs(qapp, qtbot):
    from PySide6.QtGui import QColor

    from tlstudio.gui.curves import CurvesWidget

    curves = CurvesWidget()
    qtbot.addWidget(curves)
    curves.resize(600, 400)
    for epoch in range(3):
        curves.add_epoch(epoch, {"loss": 1.0 - 0.2 * epoch, "val_loss": 1.1 - 0.2 * epoch}, 1e-3)
    try:
        for theme, dark in (("dark", True), ("light", False)):
            apply_theme(qapp, theme)
            curves.setPalette(qapp.palette())
            curves.render_now()
            corner = QColor(curves.pixmap().toImage().pixel(2, 2))
            assert (corner.lightness() < 80) == dark, (theme, corner.name())
        ticks = [t.get_text() for t in curves.renderer.ax_lr.get_xticklabels() if t.get_text()]
        assert ticks and all(t.lstrip("−-").isdigit() for t in ticks), ticks  # whole epochs only
    finally:
        apply_theme(qapp, "light")


def test_the_confusion_matrix_shades_from_the_themes_background(qapp):
    from PySide6.QtCore import Qt

    from tlstudio.gui.evaluate_models import ConfusionModel

    model = ConfusionModel()
    model.set_matrix(["a", "b"], [[9, 0], [3, 7]])
    empty, right = model.index(0, 1), model.index(0, 0)
    try:
        for theme in ("dark", "light"):
            apply_theme(qapp, theme)
            base = qapp.palette().color(QPalette.ColorRole.Base)
            assert model.data(empty, Qt.ItemDataRole.BackgroundRole) == base  # no white cells in the dark
            ink = model.data(empty, Qt.ItemDataRole.ForegroundRole)
            assert abs(ink.lightness() - base.lightness()) > 120  # its number stays readable
            assert model.data(right, Qt.ItemDataRole.BackgroundRole) != base
    finally:
        apply_theme(qapp, "light")
