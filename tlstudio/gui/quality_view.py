"""The Data panel's *Look-alikes & quality* table: near-duplicate groups (label conflicts first)
and images that may be poor examples (tiny, dark, bright, blank, blurred), from the doctor's report.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QImageReader, QPixmap
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem

from tlstudio.core.data.health import DatasetReport
from tlstudio.core.data.scan import in_folder

ICON = 48
ICON_ROWS = 200  # thumbnails are read on the GUI thread: the first rows only


class QualityView(QTableWidget):
    """One row per finding: the image(s), their classes and what was found."""

    def __init__(self) -> None:
        super().__init__(0, 3)
        self.setHorizontalHeaderLabels(["Image(s)", "Class(es)", "Finding"])
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setIconSize(QPixmap(ICON, ICON).size())
        self.setWordWrap(True)

    def show_report(self, report: DatasetReport, outliers: list | None = None) -> int:
        """Fill the table from a report (and the label check's off-distribution images, when it ran);
        returns the number of findings."""
        labels = {r.path: r.label for r in report.images}
        rows: list[tuple[list[str], list[str], str]] = []
        for group in report.near_duplicates:
            finding = (
                "look alike but carry different labels: a likely label conflict"
                if group.cross_class
                else "near-duplicates (look almost identical): kept in one split"
            )
            rows.append((group.paths, sorted(set(group.classes)), finding))
        for issue in report.quality_issues:
            rows.append(([issue.path], [labels.get(issue.path, "")], "; ".join(issue.reasons)))
        for outlier in outliers or []:
            rows.append(
                (
                    [outlier.path],
                    [outlier.label],
                    f"off-distribution: unlike the other images (distance {outlier.distance:.3f}, "
                    f"fence {outlier.fence:.3f}); is it in the right folder at all?",
                )
            )
        self.setRowCount(len(rows))
        for row, (paths, classes, finding) in enumerate(rows):
            first = QTableWidgetItem("\n".join(paths))
            first.setToolTip("\n".join(paths))
            if row < ICON_ROWS:
                first.setIcon(_thumbnail(str(in_folder(report.root, paths[0]))))
            self.setItem(row, 0, first)
            self.setItem(row, 1, QTableWidgetItem(", ".join(classes)))
            self.setItem(row, 2, QTableWidgetItem(finding))
        self.resizeColumnToContents(0)
        self.resizeRowsToContents()
        return len(rows)


def _thumbnail(path: str) -> QIcon:
    """A small icon of an image, decoded at a reduced size where the format allows (JPEG)."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid():
        reader.setScaledSize(size.scaled(ICON, ICON, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return QIcon(QPixmap.fromImage(image)) if not image.isNull() else QIcon()
