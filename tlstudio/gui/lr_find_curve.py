"""The learning-rate finder's curve: loss against rate on a log axis with the suggestion marked, drawn
with matplotlib into an image (in the worker, then again at the label's size when it is resized or the
theme changes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QImage, QPalette, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy

if TYPE_CHECKING:
    from tlstudio.core.training.lr_find import LrFindResult

CURVE_SIZE = (560, 300)  # px, the curve drawn while the dialog is hidden (redrawn at the label's size)
REDRAW_DELAY_MS = 200  # after a resize, once it settles


def draw_curve(result: LrFindResult, size: tuple[int, int], colors: tuple[str, str]) -> QImage:
    """The loss-versus-rate curve (log axis), the suggestion marked, as an image of ``size`` pixels
    in ``colors`` (background, ink). Safe off the GUI thread (Agg, no Qt widget)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    background, ink = colors
    width, height = max(size[0], 200), max(size[1], 150)
    figure = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    figure.set_facecolor(background)
    ax = figure.add_subplot()
    ax.set_facecolor(background)
    if result.rates:
        ax.plot(result.rates, result.losses, color="#9ab", lw=1, alpha=0.6, label="loss")
        ax.plot(result.rates, result.smoothed, color="#1f77b4", lw=2, label="smoothed loss")
        ax.set_xscale("log")
        if result.suggestion:
            ax.axvline(
                result.suggestion, color="#d62728", ls="--", label=f"suggested {result.suggestion:.1e}"
            )
        low, high = min(result.smoothed), max(result.smoothed[: max(2, len(result.smoothed) // 2)])
        ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.25 * (high - low + 1e-9))
        legend = ax.legend(loc="best", fontsize=8)
        legend.get_frame().set_facecolor(background)
        legend.get_frame().set_edgecolor(ink)
        for text in legend.get_texts():
            text.set_color(ink)
    else:
        ax.text(0.5, 0.5, "No rate measured", ha="center", va="center", transform=ax.transAxes, color="#888")
        ax.set_xticks([])
        ax.set_yticks([])
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("learning rate (fine-tune phase)", color=ink)
    ax.set_ylabel("training loss", color=ink)
    ax.tick_params(colors=ink, which="both")
    for spine in ax.spines.values():
        spine.set_edgecolor(ink)
    canvas.draw()
    buffer = canvas.buffer_rgba()
    image = QImage(bytes(buffer), buffer.shape[1], buffer.shape[0], QImage.Format.Format_RGBA8888)
    return image.copy()


class CurveLabel(QLabel):
    """The curve as an image; redrawn at its own size when resized or the theme changes."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.result: LrFindResult | None = None
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._timer = QTimer(self, singleShot=True, interval=REDRAW_DELAY_MS)
        self._timer.timeout.connect(self.redraw)
        self.clear()

    def clear(self) -> None:
        """No curve: the placeholder."""
        self.result = None
        self.setPixmap(QPixmap())
        self.setText("The curve appears here after the sweep.")

    def colors(self) -> tuple[str, str]:
        """(background, ink): the window's palette."""
        palette = self.palette()
        return palette.color(QPalette.ColorRole.Base).name(), palette.color(QPalette.ColorRole.Text).name()

    def show_image(self, result: LrFindResult, image: QImage) -> None:
        """A curve drawn elsewhere (the worker) for ``result``."""
        self.result = result
        self.setPixmap(QPixmap.fromImage(image))
        if image.size() != self.size():  # resized (or hidden) while it ran: drawn again to fit
            self._timer.start()

    def redraw(self) -> None:
        """Draw the current result at this label's size (on the GUI thread: matplotlib is loaded by then)."""
        if self.result is not None:
            self.setPixmap(
                QPixmap.fromImage(draw_curve(self.result, (self.width(), self.height()), self.colors()))
            )

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.result is not None:
            self._timer.start()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self.result is not None:
            self._timer.start()
