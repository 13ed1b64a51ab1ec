"""The start page: new project, open project, recent projects, the sample dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from tlstudio.gui.main_window import MainWindow


class StartPage(QWidget):
    """New, open, recent projects, and the sample dataset."""

    def __init__(self, window: MainWindow):
        super().__init__()
        title = QLabel(
            "<h1>TL Studio</h1><p>Transfer learning on your images, on your machine.</p>"
            "<p>Point at a folder with one sub-folder per class, pick a pretrained backbone, choose what "
            "to freeze, train while you watch the curves, and export a model that takes raw images."
            "</p>"
        )
        title.setWordWrap(True)
        self.new = QPushButton("New project…")
        self.open = QPushButton("Open project…")
        self.sample = QPushButton("Try the sample dataset")
        self.quick = QPushButton("Quick model from a folder…")
        self.quick.setToolTip(
            "Choose a folder with one sub-folder per class: TL Studio checks it, ranks the backbones this "
            "machine has, trains the best with the default recipe and exports every format that passes "
            "its check. Nothing else to choose."
        )
        self.quick.clicked.connect(lambda: window.quick_model())
        self.quick.setDefault(True)  # the one-click path stands out
        self.sample.setToolTip("400 handwritten digits in 10 classes, bundled with TL Studio")
        self.new.clicked.connect(window.new_project)
        self.open.clicked.connect(lambda: window.open_project())
        self.sample.clicked.connect(window.open_sample)
        self.recent = QListWidget()
        self.recent.itemActivated.connect(lambda item: window.open_project(item.text()))
        buttons = QHBoxLayout()
        for b in (self.quick, self.new, self.open, self.sample):
            b.setMinimumHeight(36)
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("<b>Recent projects</b> (double-click or Enter to open)"))
        layout.addWidget(self.recent, 1)

    def show_recent(self, paths: list[str]) -> None:
        """Fill the recent list."""
        self.recent.clear()
        self.recent.addItems(paths)
        if not paths:
            self.recent.addItem("No recent projects yet.")
            self.recent.item(0).setFlags(Qt.ItemFlag.NoItemFlags)
