"""Live learning curves: matplotlib in Qt, redrawn at most ten times a second however fast
batches arrive (points are buffered; a timer redraws when something changed)."""

from __future__ import annotations

import math

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QSizePolicy

REDRAW_MS = 100
SMOOTHING = 0.9  # exponential moving average of the per-batch loss


class CurvesWidget(FigureCanvasQTAgg):
    """Loss per batch (smoothed) and per epoch, validation loss/accuracy, learning rate, phases."""

    def __init__(self, parent=None):
        self.figure = Figure(figsize=(7, 5), layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.ax_loss, self.ax_acc, self.ax_lr = self.figure.subplots(
            3, 1, sharex=True, height_ratios=(3, 2, 1)
        )
        self.redraws = 0
        self.clear()
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()

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

    def _redraw_if_dirty(self) -> None:
        if self._dirty and self.isVisible():
            self._dirty = False
            self.redraw()

    def redraw(self) -> None:
        """Draw everything now."""
        self.redraws += 1
        for ax in (self.ax_loss, self.ax_acc, self.ax_lr):
            ax.clear()
            ax.grid(True, alpha=0.3)
        if self.batches:
            xs, ys = zip(*self.batches, strict=True)
            self.ax_loss.plot(xs, ys, color="#9ab", lw=1, label="train loss (per batch, smoothed)")
        self._epoch_line(self.ax_loss, "loss", "train loss", "#1f77b4")
        self._epoch_line(self.ax_loss, "val_loss", "validation loss", "#d62728")
        self._epoch_line(self.ax_acc, "accuracy", "train accuracy", "#1f77b4")
        self._epoch_line(self.ax_acc, "val_accuracy", "validation accuracy", "#d62728")
        self._epoch_line(self.ax_lr, "learning_rate", "learning rate", "#2ca02c")
        for x, name in self.phases:
            for ax in (self.ax_loss, self.ax_acc, self.ax_lr):
                ax.axvline(x, color="#888", ls="--", lw=1)
            self.ax_loss.annotate(
                name,
                (x, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
                color="#555",
            )
        self.ax_loss.set_ylabel("loss")
        self.ax_acc.set_ylabel("accuracy")
        self.ax_lr.set_ylabel("LR")
        self.ax_lr.set_xlabel("epoch")
        if self.epochs and any(e.get("learning_rate", 0) > 0 for e in self.epochs):
            self.ax_lr.set_yscale("log")
        for ax in (self.ax_loss, self.ax_acc):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize=8)
        if not self.batches and not self.epochs:
            self.ax_loss.text(
                0.5,
                0.5,
                "Curves appear here while training runs",
                ha="center",
                va="center",
                transform=self.ax_loss.transAxes,
                color="#888",
            )
        self.draw_idle()

    def _epoch_line(self, ax, key: str, label: str, color: str) -> None:
        points = [(e["epoch"], e[key]) for e in self.epochs if key in e]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, "o-", color=color, ms=3, lw=1.5, label=label)
