"""The Evaluate panel's curves for a multi-label run: a label chooser, that label's precision–recall
curve with the point of its decision threshold marked, and its reliability diagram beside it — drawn
with matplotlib's Agg canvas into an image, again at the widget's size when it is resized or the theme
changes (as the learning-rate finder's curve is)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QImage, QPalette, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

CURVE = "#1f77b4"
OPERATING_POINT = "#d62728"  # the threshold's point (the report marks it in the same red)
REDRAW_DELAY_MS = 200  # after a resize, once it settles


def draw_label(
    name: str, evaluation: dict[str, Any], size: tuple[int, int], colors: tuple[str, str]
) -> tuple[Any, QImage]:
    """One label's precision–recall curve (its threshold's point marked) and reliability diagram.

    Args:
        name: the label.
        evaluation: a multi-label ``evaluation.json`` with its curves (``with_label_curves``).
        size: the image's size in pixels.
        colors: (background, ink).

    Returns:
        The matplotlib figure (its axes hold what was drawn) and its image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    background, ink = colors
    width, height = max(size[0], 300), max(size[1], 160)
    figure = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    figure.set_facecolor(background)
    pr, rel = figure.subplots(1, 2)
    row = evaluation["per_label"][name]
    curve = evaluation.get("pr_curves", {}).get(name)
    if curve is None:
        _say(pr, "no image with this label in the test split: no curve")
    else:
        pr.plot(curve["recall"], curve["precision"], drawstyle="steps-post", color=CURVE, lw=1.5)
        pr.plot([row["recall"]], [row["precision"]], "o", color=OPERATING_POINT, ms=9, zorder=5)
        pr.set_title(
            f"threshold {row['threshold']:.2f}: precision {row['precision']:.2f}, recall {row['recall']:.2f}",
            fontsize=8,
            color=ink,
        )
    pr.set(xlim=(0, 1.02), ylim=(0, 1.05))
    pr.set_xlabel("recall", color=ink)
    pr.set_ylabel("precision", color=ink)
    rel.plot([0, 1], [0, 1], "--", color="#888", lw=1)
    calibrated = evaluation.get("calibration", {}).get(name)
    if calibrated is None:
        _say(rel, "no calibration stored")
    else:
        filled = [b for b in calibrated["bins"] if b["count"]]
        rel.plot(
            [b["mean_probability"] for b in filled],
            [b["fraction_positive"] for b in filled],
            "o-",
            color=CURVE,
            ms=4,
        )
        rel.set_title(f"calibration: ECE {calibrated['ece']:.3f}", fontsize=8, color=ink)
    rel.set(xlim=(0, 1), ylim=(0, 1))
    rel.set_xlabel("mean probability", color=ink)
    rel.set_ylabel("share with the label", color=ink)
    for ax in (pr, rel):
        ax.set_facecolor(background)
        ax.grid(True, alpha=0.3)
        ax.tick_params(colors=ink, labelsize=8)
        for spine in ax.spines.values():
            spine.set_edgecolor(ink)
    canvas.draw()
    buffer = canvas.buffer_rgba()
    image = QImage(bytes(buffer), buffer.shape[1], buffer.shape[0], QImage.Format.Format_RGBA8888)
    return figure, image.copy()


def _say(ax: Any, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888", fontsize=8, wrap=True
    )


class LabelCurves(QWidget):
    """A label chooser over the chosen label's curves; hidden for a run that is not multi-label."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.evaluation: dict[str, Any] = {}
        self.figure: Any = None  # the figure last drawn (what the image shows)
        self.chooser = QComboBox()
        self.chooser.setToolTip("The label whose precision–recall curve and calibration are shown")
        self.chooser.currentTextChanged.connect(self.redraw)
        self.image = QLabel()
        self.image.setMinimumSize(300, 160)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # (not the pixmap's)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        row = QHBoxLayout()
        row.addWidget(
            QLabel("<b>Per label</b> — precision–recall (red: the label's threshold) and calibration:")
        )
        row.addWidget(self.chooser)
        row.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.image, 1)
        self._timer = QTimer(self, singleShot=True, interval=REDRAW_DELAY_MS)
        self._timer.timeout.connect(self.redraw)
        self.hide()

    def show_evaluation(self, evaluation: dict[str, Any]) -> bool:
        """Show a multi-label run's ``evaluation.json`` (curves made from its predictions when it was
        stored without them); hide for any other.

        Returns:
            Whether it is shown.
        """
        multi = evaluation.get("task") == "multi_label" and bool(evaluation.get("per_label"))
        self.evaluation = {}
        if multi:
            from tlstudio.core.results.multilabel_curves import with_label_curves  # (NumPy: not at start-up)

            self.evaluation = with_label_curves(evaluation)
        self.chooser.blockSignals(True)
        self.chooser.clear()
        self.chooser.addItems(list(self.evaluation.get("per_label", {})))
        self.chooser.blockSignals(False)
        self.setVisible(multi)
        self.redraw()
        return multi

    def choose(self, label: str) -> None:
        """Show ``label``'s curves."""
        self.chooser.setCurrentText(label)

    def colors(self) -> tuple[str, str]:
        """(background, ink): the window's palette."""
        palette = self.palette()
        return palette.color(QPalette.ColorRole.Base).name(), palette.color(QPalette.ColorRole.Text).name()

    def redraw(self) -> None:
        """Draw the chosen label at the image's size."""
        name = self.chooser.currentText()
        if not self.evaluation or name not in self.evaluation["per_label"]:
            self.figure = None
            self.image.setPixmap(QPixmap())
            return
        size = (self.image.width(), self.image.height())
        self.figure, image = draw_label(name, self.evaluation, size, self.colors())
        self.image.setPixmap(QPixmap.fromImage(image))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.evaluation:
            self._timer.start()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self.evaluation:
            self._timer.start()
