"""Choosing a set of labels for one image of multi-label data: a check box per label, in a row or in a
dialog (the label check's fix, Label next's labelling)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)


def shown(labels) -> str:
    """A label set in words: the labels joined by '; ', or '(none)'."""
    return "; ".join(labels) or "(none)"


class LabelChecks(QWidget):
    """One check box per label; ``checked()`` is the chosen set, sorted."""

    def __init__(self, labels=(), parent=None):
        super().__init__(parent)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.boxes: dict[str, QCheckBox] = {}
        self.set_labels(labels)

    def set_labels(self, labels) -> None:
        """Show a box per label (all unchecked)."""
        for box in self.boxes.values():
            self._layout.removeWidget(box)
            box.deleteLater()
        self.boxes = {label: QCheckBox(label) for label in labels}
        for box in self.boxes.values():
            self._layout.addWidget(box)

    def set_checked(self, labels) -> None:
        """Check exactly these labels."""
        chosen = set(labels)
        for label, box in self.boxes.items():
            box.setChecked(label in chosen)

    def checked(self) -> tuple[str, ...]:
        """The checked labels, sorted."""
        return tuple(sorted(label for label, box in self.boxes.items() if box.isChecked()))


class LabelSetDialog(QDialog):
    """Ask for an image's labels: its given ones and the suggested ones side by side, a box per label
    (checked as suggested)."""

    def __init__(self, path: str, labels, given, suggested, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Fix the labels")
        text = QLabel(
            f"<b>{path}</b><br>labelled: {shown(given)}<br>suggested: {shown(suggested)}<br>"
            "Check the labels the image shows; OK writes them to the labels CSV (Undo takes them back)."
        )
        text.setWordWrap(True)
        self.checks = LabelChecks(labels)
        self.checks.set_checked(suggested)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.checks)
        layout.addWidget(buttons)
