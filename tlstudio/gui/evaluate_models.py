"""The Evaluate panel's Qt models — the confusion matrix (cells shaded by share), the error gallery —
and the HTML of its metrics summary."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QListView

from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import Manifest
from tlstudio.report_text import counted

THUMB = 96
_ROOT = QModelIndex()


class ConfusionModel(QAbstractTableModel):
    """Counts, rows: true class, columns: predicted; cells shaded by share of the true class."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[str] = []
        self.matrix: list[list[int]] = []

    def set_matrix(self, labels: list[str], matrix: list[list[int]]) -> None:
        """Show a new matrix."""
        self.beginResetModel()
        self.labels, self.matrix = list(labels), [list(r) for r in matrix]
        self.endResetModel()

    def rowCount(self, parent=_ROOT):
        return 0 if parent.isValid() else len(self.labels)

    def columnCount(self, parent=_ROOT):
        return 0 if parent.isValid() else len(self.labels)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        value = self.matrix[index.row()][index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return Qt.AlignmentFlag.AlignCenter
        if role == Qt.ItemDataRole.BackgroundRole:
            return self._shade(index)
        if role == Qt.ItemDataRole.ForegroundRole:  # readable on its shade, in either theme
            return QColor("#000000") if self._shade(index).lightness() > 140 else QColor("#ffffff")
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"true {self.labels[index.row()]}, predicted {self.labels[index.column()]}: {value}"
        return None

    def _shade(self, index) -> QColor:
        """From the theme's background (an empty cell) to blue (right) or red (wrong) by the share
        of its row: a dark theme's empty cells were white."""
        share = self.matrix[index.row()][index.column()] / max(sum(self.matrix[index.row()]), 1)
        good = index.row() == index.column()
        full = (40, 120, 220) if good else (220, 60, 40)
        empty = QApplication.palette().color(QPalette.ColorRole.Base)
        start = (empty.red(), empty.green(), empty.blue())
        return QColor(*(int(a + share * (b - a)) for a, b in zip(start, full, strict=True)))

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole or section >= len(self.labels):
            return None
        return self.labels[section]  # the title says rows are true classes, columns predicted


class GalleryModel(QAbstractListModel):
    """Prediction records as thumbnails with true class, predicted class and confidence."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, object]] = []
        self.data_dir: Path | None = None
        self._thumbs: dict[str, QPixmap] = {}

    def set_items(self, items: list[dict[str, object]], data_dir: Path | None) -> None:
        """Show these predictions."""
        self.beginResetModel()
        self.items, self.data_dir = list(items), data_dir
        self.endResetModel()

    def refresh(self, row: int) -> None:
        """Re-read one item (after its file moved)."""
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def rowCount(self, parent=_ROOT):
        return 0 if parent.isValid() else len(self.items)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            moved = f"\nmoved to {item['moved_to']}" if item.get("moved_to") else ""
            if item.get("added_to"):
                moved = f"\nadded to {item['added_to']}"
            return f"{item['true']} → {item['predicted']}\n{item['confidence']:.2f}{moved}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumb(str(item["path"]))
        if role == Qt.ItemDataRole.ToolTipRole:
            return (
                f"{item['path']}\ntrue {item['true']}, predicted {item['predicted']} "
                f"({item['confidence']:.3f})"
            )
        return None

    def _thumb(self, rel: str) -> QPixmap:
        """The image's thumbnail, or a placeholder that says why there is none (never unfilled
        memory), read once per folder and path."""
        key = f"{self.data_dir}\0{rel}"
        if key not in self._thumbs:
            path = in_folder(self.data_dir, rel) if self.data_dir is not None else None
            self._thumbs[key] = thumbnail(path if path is not None and path.is_file() else None)
        return self._thumbs[key]


def _interval(accuracy: float, n: int) -> str:
    from tlstudio.core.results.metrics import wilson_interval

    low, high = wilson_interval(round(accuracy * n), n)
    return f"{low:.2f}–{high:.2f}"


def fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "—" if value is None else str(value)


def _bootstrap(e: dict, key: str) -> str:
    """`` (95% a–b)`` for a score with a bootstrap interval in the evaluation; empty for older ones."""
    ci = e.get("intervals", {})
    return f" (95% {ci[key][0]:.2f}–{ci[key][1]:.2f})" if key in ci else ""


def summary_html(e: dict[str, object]) -> str:
    tops = ", ".join(f"top-{k} {v:.3f}" for k, v in e["top_k"].items() if k != "1")
    auc = e["auc"]["macro"]
    head = (
        f"<p><b>Test accuracy {e['accuracy']:.3f}</b> on {counted(e['num_images'], 'image')} "
        f"(95% interval {_interval(e['accuracy'], e['num_images'])})"
        + (f" · {tops}" if tops else "")
        + f" · macro F1 {e['averages']['macro']['f1']:.3f}{_bootstrap(e, 'macro_f1')}"
        + (
            f" · balanced accuracy {e['balanced_accuracy']:.3f}{_bootstrap(e, 'balanced_accuracy')}"
            if "balanced_accuracy" in e
            else ""
        )
        + f" · weighted F1 {e['averages']['weighted']['f1']:.3f}"
        + (f" · ROC AUC {auc:.3f}" if auc is not None else "")
        + f" · log loss {e['loss']:.3f} · ECE {e['ece']:.3f}</p>"
    )
    rows = "".join(
        f"<tr><td>{name}</td><td>{r['precision']:.3f}</td><td>{r['recall']:.3f}</td><td>{r['f1']:.3f}</td>"
        f"<td>{r['support']}</td><td>{fmt(e['auc']['per_class'].get(name))}</td></tr>"
        for name, r in e["per_class"].items()
    )
    return (
        head + "<table border=1 cellpadding=3><tr><th>class</th><th>precision</th><th>recall</th>"
        f"<th>F1</th><th>support</th><th>AUC</th></tr>{rows}</table>"
    )


def multilabel_summary_html(e: dict[str, object]) -> str:
    """A multi-label run's test scores (``multilabel_evaluation``): the averages with their 95% intervals,
    then a row per label (threshold, AP, precision, recall, F1, support); names escaped."""
    from html import escape

    ci = e["intervals"]

    def shown(key: str, value) -> str:
        if value is None:
            return "—"
        return f"{value:.3f}" + (f" ({ci[key][0]:.2f}–{ci[key][1]:.2f})" if key in ci else "")

    head = (
        f"<p><b>Test macro mAP {shown('macro_map', e['macro_map'])}</b> on "
        f"{counted(e['num_images'], 'image')} (multi-label; 95% intervals in brackets) · micro mAP "
        f"{shown('micro_map', e['micro_map'])} · at the thresholds: macro F1 "
        f"{shown('macro_f1', e['macro']['f1'])}, micro F1 {shown('micro_f1', e['micro']['f1'])}, subset "
        f"accuracy {shown('subset_accuracy', e['subset_accuracy'])}, Hamming loss "
        f"{shown('hamming_loss', e['hamming_loss'])}"
        + (f" · macro ECE {e['macro_ece']:.3f}" if e.get("macro_ece") is not None else "")
        + "</p>"
    )
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{r['threshold']:.3f}</td><td>{fmt(r['ap'])}</td>"
        f"<td>{r['precision']:.3f}</td><td>{r['recall']:.3f}</td><td>{r['f1']:.3f}</td><td>{r['support']}</td></tr>"
        for name, r in e["per_label"].items()
    )
    return (
        head + "<table border=1 cellpadding=3><tr><th>label</th><th>threshold</th><th>AP</th>"
        f"<th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>"
    )


def thumbnail_view(model: GalleryModel) -> QListView:
    """An icon-mode list of ``model``'s thumbnails (the error gallery, the label check)."""
    view = QListView()
    view.setModel(model)
    view.setViewMode(QListView.ViewMode.IconMode)
    view.setIconSize(QSize(THUMB, THUMB))
    view.setGridSize(QSize(THUMB + 40, THUMB + 54))
    view.setResizeMode(QListView.ResizeMode.Adjust)
    view.setWordWrap(True)
    return view


def manifest_at(path: Path | None) -> Manifest | None:
    """The project's split manifest, if it has one yet (a relabel updates it)."""
    return Manifest.load(path) if path is not None and path.is_file() else None


NOT_FOUND = "image not found"
UNREADABLE = "image unreadable"


def placeholder(text: str, size: int = THUMB) -> QPixmap:
    """A grey square that says what is missing instead of an image."""
    image = QImage(size, size, QImage.Format.Format_RGB32)
    image.fill(QColor("#9a9a9a"))
    painter = QPainter(image)
    painter.setPen(QColor("#ffffff"))
    painter.drawText(image.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
    painter.end()
    return QPixmap.fromImage(image)


def thumbnail(path: Path | None, size: int = THUMB) -> QPixmap:
    """The image at ``path`` scaled to fit ``size``², or a placeholder saying why there is none
    (never an unfilled image)."""
    if path is None:
        return placeholder(NOT_FOUND, size)
    image = QImage(str(path))
    if image.isNull():
        return placeholder(UNREADABLE, size)
    return QPixmap.fromImage(
        image.scaled(
            size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
    )
