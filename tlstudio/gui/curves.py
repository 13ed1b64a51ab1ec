"""Live learning curves, redrawn at most ten times a second however fast batches arrive.

Points are buffered on the GUI thread; a timer hands a snapshot to a renderer thread that draws
the matplotlib figure with Agg and sends back an image, which the GUI thread only has to show.
Drawing the figure takes 150–250 ms on a slow CPU; done on the GUI thread, that was the largest
stall of the event loop while training (see benchmarks/bench_gui_stall.py), hence the thread.
"""

from __future__ import annotations

import math
import queue
import threading

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPalette, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy

REDRAW_MS = 100
SMOOTHING = 0.9  # exponential moving average of the per-batch loss
LIGHT = ("#ffffff", "#222222")  # (background, text and lines) of the figure: the theme's
PHASE_LABEL_ROW = 12  # points between the rows of phase labels, under the top of the loss plot


class _Renderer(QObject):
    """Owns the figure; draws snapshots on its own thread (the figure is touched nowhere else)."""

    rendered = Signal(QImage)

    def __init__(self) -> None:
        super().__init__()
        self.figure = None  # built on first use, in the renderer thread: matplotlib (about 0.5 s to
        # import) stays off the path to the window's first paint
        self.phase_artists: list = []  # the dashed lines
        self.phase_labels: list = []  # their names, at the top of the loss plot
        self.colors = None
        self.lock = threading.Lock()  # render() from this thread, or render_now() from the GUI thread
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="tlstudio-curves", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            while not self.jobs.empty():  # only the newest snapshot matters
                job = self.jobs.get()
            if job is None:
                return
            self.rendered.emit(self.render(*job))

    def render(self, size, batches, epochs, phases, colors=LIGHT) -> QImage:
        """Draw one snapshot at ``size`` (pixels) into an image, in ``colors`` (background, ink)."""
        with self.lock:
            return self._render(size, batches, epochs, phases, colors)

    def _paint(self, colors) -> None:
        """The figure in the window's colours (a dark theme's plots were white)."""
        if colors == self.colors:
            return
        self.colors = background, ink = colors
        self.figure.set_facecolor(background)
        for ax in (self.ax_loss, self.ax_acc, self.ax_lr):
            ax.set_facecolor(background)
            ax.tick_params(colors=ink, which="both")
            ax.yaxis.label.set_color(ink)
            ax.xaxis.label.set_color(ink)
            for spine in ax.spines.values():
                spine.set_edgecolor(ink)
            legend = ax.get_legend()
            if legend is not None:
                legend.get_frame().set_facecolor(background)
                legend.get_frame().set_edgecolor(ink)
                for text in legend.get_texts():
                    text.set_color(ink)

    def _build(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

        self.figure = Figure(figsize=(7, 5), dpi=100)
        self.canvas = FigureCanvasAgg(self.figure)
        self.ax_loss, self.ax_acc, self.ax_lr = self.figure.subplots(
            3, 1, sharex=True, height_ratios=(3, 2, 1)
        )
        self.figure.subplots_adjust(left=0.12, right=0.97, top=0.97, bottom=0.1, hspace=0.12)
        for ax, label in ((self.ax_loss, "loss"), (self.ax_acc, "accuracy"), (self.ax_lr, "LR")):
            ax.grid(True, alpha=0.3)
            ax.set_ylabel(label)
        self.ax_lr.set_xlabel("epoch")
        self.ax_lr.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, not 0.25 of one
        self.rate_ticks = (
            LogLocator(subs=(1.0, 2.0, 5.0)),
            FuncFormatter(lambda v, _: f"{v:.0e}"),
            NullFormatter(),
        )
        self.lines = {
            "batch": self.ax_loss.plot([], [], color="#9ab", lw=1, label="train loss (per batch, smoothed)")[
                0
            ],
            "loss": self.ax_loss.plot([], [], "o-", color="#1f77b4", ms=3, label="train loss")[0],
            "val_loss": self.ax_loss.plot([], [], "o-", color="#d62728", ms=3, label="validation loss")[0],
            "accuracy": self.ax_acc.plot([], [], "o-", color="#1f77b4", ms=3, label="train accuracy")[0],
            "val_accuracy": self.ax_acc.plot(
                [], [], "o-", color="#d62728", ms=3, label="validation accuracy"
            )[0],
            "learning_rate": self.ax_lr.plot([], [], "o-", color="#2ca02c", ms=3, label="learning rate")[0],
        }
        self.ax_loss.legend(loc="best", fontsize=8)  # where it hides the fewest points
        self.ax_acc.legend(loc="best", fontsize=8)
        self.placeholder = self.ax_loss.text(
            0.5,
            0.5,
            "Curves appear here while training runs",
            ha="center",
            va="center",
            transform=self.ax_loss.transAxes,
            color="#888",
        )

    def _render(self, size, batches, epochs, phases, colors=LIGHT) -> QImage:
        if self.figure is None:
            self._build()
        self._paint(colors)
        width, height = max(size[0], 200), max(size[1], 150)
        self.figure.set_size_inches(width / 100, height / 100)
        self.lines["batch"].set_data(*(zip(*batches, strict=True) if batches else ([], [])))
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
            # (the probe's epoch has no learning rate: 0, which a log axis cannot show)
            points = [
                (e["epoch"], e[key]) for e in epochs if key in e and (key != "learning_rate" or e[key] > 0)
            ]
            self.lines[key].set_data(*(zip(*points, strict=True) if points else ([], [])))
        self.placeholder.set_visible(not batches and not epochs)
        for artist in self.phase_artists + self.phase_labels:
            artist.remove()
        self.phase_artists, self.phase_labels = [], []
        for x, name in phases:
            for ax in (self.ax_loss, self.ax_acc, self.ax_lr):
                self.phase_artists.append(ax.axvline(x, color="#888", ls="--", lw=1))
            self.phase_labels.append(
                self.ax_loss.annotate(
                    name,
                    (x, 1),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -PHASE_LABEL_ROW),
                    textcoords="offset points",
                    fontsize=8,
                    color="#888",  # readable on a light and a dark figure
                )
            )
        self.ax_lr.set_yscale("log" if any(e.get("learning_rate", 0) > 0 for e in epochs) else "linear")
        # (after the scale, which resets them) rates as 1e-03, without 2×10⁻³ minor labels: those
        # were wide enough to push the axis name off the figure
        if self.ax_lr.get_yscale() == "log":  # labelled at 1, 2 and 5 of each decade
            self.ax_lr.yaxis.set_major_locator(self.rate_ticks[0])
            self.ax_lr.yaxis.set_major_formatter(self.rate_ticks[1])
            self.ax_lr.yaxis.set_minor_formatter(self.rate_ticks[2])
        for ax in (self.ax_loss, self.ax_acc, self.ax_lr):
            ax.set_autoscale_on(True)  # limits set for an empty axis below must not stick
            ax.relim()
            ax.autoscale_view()
            empty = not any(len(line.get_xdata()) for line in ax.get_lines() if line in self.lines.values())
            if empty:  # no ±0.04 or 1e−48 ticks on an axis with nothing on it yet
                ax.set_ylim(0, 1)
            ax.tick_params(axis="y", labelleft=not empty)
        if not batches and not epochs:  # nothing yet: no ±0.04 epochs either
            self.ax_lr.set_xlim(0, 1)
        self.ax_lr.tick_params(axis="x", labelbottom=bool(batches or epochs))
        rates = [e["learning_rate"] for e in epochs if e.get("learning_rate", 0) > 0]
        if rates and max(rates) < 1.5 * min(rates):  # a flat rate: a readable decade around it
            self.ax_lr.set_ylim(min(rates) / 3, max(rates) * 3)
        self.figure.align_ylabels()
        self._stagger_phase_labels()  # (once the limits are final: they place the labels)
        self.canvas.draw()
        buffer = self.canvas.buffer_rgba()
        image = QImage(bytes(buffer), buffer.shape[1], buffer.shape[0], QImage.Format.Format_RGBA8888)
        return image.copy()

    def _stagger_phase_labels(self) -> None:
        """Move each phase label down a row until it overlaps no earlier one: short phases (a probe
        of one epoch before fine-tuning) put their labels a few pixels apart."""
        renderer = self.canvas.get_renderer()
        placed = []
        for label in self.phase_labels:
            for row in range(len(placed) + 1):  # a free row always exists among these
                label.xyann = (3, -PHASE_LABEL_ROW * (row + 1))
                box = label.get_window_extent(renderer)
                if not any(box.overlaps(other) for other in placed):
                    break
            placed.append(box)

    def stop(self) -> None:
        """End the thread."""
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join(timeout=10)


class CurvesWidget(QLabel):
    """Loss per batch (smoothed) and per epoch, validation loss/accuracy, learning rate, phases."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(300, 240)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.renderer = _Renderer()
        self.renderer.rendered.connect(self._show_image)
        self.redraws = 0
        self.clear()
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()
        self.destroyed.connect(self.renderer.stop)

    def clear(self) -> None:
        """Forget every point."""
        self.batches: list[tuple[float, float]] = []  # (epoch position, smoothed loss)
        self.epochs: list[dict[str, float]] = []
        self.phases: list[tuple[float, str]] = []
        self._smooth: float | None = None
        self._dirty = True

    def add_batch(self, epoch: int, step: int, steps: int, loss: float) -> None:
        """A training batch ended (any thread's event, delivered on the GUI thread)."""
        if not math.isfinite(loss):
            return
        self._smooth = loss if self._smooth is None else SMOOTHING * self._smooth + (1 - SMOOTHING) * loss
        self.batches.append((epoch + step / max(steps, 1), self._smooth))
        self._dirty = True

    def add_epoch(self, epoch: int, metrics: dict[str, float], learning_rate: float) -> None:
        """An epoch ended."""
        self.epochs.append({"epoch": epoch + 1, "learning_rate": learning_rate, **metrics})
        self._dirty = True

    def add_phase(self, first_epoch: int, name: str) -> None:
        """A phase of the recipe starts at ``first_epoch``."""
        self.phases.append((float(first_epoch), name))
        self._dirty = True

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._dirty = True

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # the theme changed: redraw in its colours
            self._dirty = True

    def colors(self) -> tuple[str, str]:
        """(background, ink) of the figure, from the window's palette."""
        palette = self.palette()
        return palette.color(QPalette.ColorRole.Base).name(), palette.color(QPalette.ColorRole.Text).name()

    def _redraw_if_dirty(self) -> None:
        if self._dirty and self.isVisible():
            self._dirty = False
            self.redraw()

    def redraw(self) -> None:
        """Queue a snapshot for the renderer thread."""
        self.redraws += 1
        snapshot = (
            (self.width(), self.height()),
            list(self.batches),
            [dict(e) for e in self.epochs],
            list(self.phases),
            self.colors(),
        )
        self.renderer.jobs.put(snapshot)

    def render_now(self) -> None:
        """Draw synchronously (screenshots, tests)."""
        size = (self.width(), self.height())
        snapshot = (list(self.batches), list(self.epochs), list(self.phases))
        self._show_image(self.renderer.render(size, *snapshot, self.colors()))

    def _show_image(self, image: QImage) -> None:
        self.setPixmap(QPixmap.fromImage(image))
