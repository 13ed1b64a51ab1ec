"""Images per class as horizontal bars, painted with Qt (no matplotlib on the way to the first paint)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from tlstudio.report_text import counted

BAR = QColor("#4c78a8")
ROW = 18  # pixels per class


class ClassBars(QWidget):
    """One bar per class, longest first in the order given; an empty state until counts arrive."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.counts: dict[str, int] = {}
        self.setMinimumHeight(80)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_counts(self, counts: dict[str, int]) -> None:
        """Show these counts (class → usable images)."""
        self.counts = dict(counts)
        self.setToolTip("\n".join(f"{name}: {n}" for name, n in self.counts.items()))
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().color(QPalette.ColorRole.WindowText)
        if not self.counts:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Images per class appear here")
            return
        metrics = painter.fontMetrics()
        label_width = min(max(metrics.horizontalAdvance(n) for n in self.counts) + 12, self.width() // 3)
        top = max(n for n in self.counts.values()) or 1
        row = min(ROW, max(6, (self.height() - 4) // len(self.counts)))
        for i, (name, n) in enumerate(self.counts.items()):
            y = 2 + i * row
            if y + row > self.height():
                painter.setPen(text)
                painter.drawText(4, y + metrics.ascent(), f"… {counted(len(self.counts) - i, 'more class')}")
                break
            painter.setPen(text)
            label = metrics.elidedText(name, Qt.TextElideMode.ElideRight, label_width - 6)
            painter.drawText(QRectF(0, y, label_width - 4, row), Qt.AlignmentFlag.AlignRight, label)
            room = self.width() - label_width - 50
            width = max(1.0, room * n / top)
            painter.fillRect(QRectF(label_width, y + 2, width, row - 4), BAR)
            painter.drawText(QRectF(label_width + width + 4, y, 46, row), Qt.AlignmentFlag.AlignLeft, str(n))
