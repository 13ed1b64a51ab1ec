"""ImageNet weights in the Backbone panel: whether they are in Keras' cache, a download with a
progress bar and Cancel (resumed next time), or a file the user downloaded elsewhere."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tlstudio.gui.worker import Task


def look_up(name: str, image_size: int | None):
    """Worker job: the weights file Keras wants and whether it is already there."""
    from tlstudio.core.backbone.weights import imagenet_weights_file

    weights = imagenet_weights_file(name, image_size)
    return weights, weights.is_cached()


def fetch(task: Task, weights):
    """Worker job: download with progress events; ``task.stop()`` cancels."""
    from tlstudio.core.backbone.weights import download

    return download(weights, progress=lambda n, total: task.report((n, total)), stop=task.stop_event)


def install(weights, source: str):
    """Worker job: check a local copy and put it in the cache."""
    from tlstudio.core.backbone.weights import install_local

    return install_local(weights, source)


class WeightsBox(QWidget):
    """Shown for a Keras Applications backbone with ImageNet weights."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.weights = None
        self.shown: tuple[str, int | None] | None = None
        self.task: Task | None = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.download = QPushButton("Download ImageNet weights")
        self.download.setToolTip(
            "Into Keras' cache (~/.keras/models), checked against Keras' hash; resumable"
        )
        self.download.clicked.connect(self.start_download)
        self.from_file = QPushButton("Use a downloaded file…")
        self.from_file.setToolTip("The same .h5 file fetched on another machine (its checksum is checked)")
        self.from_file.clicked.connect(self._pick_file)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self.cancel_download)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        row = QHBoxLayout()
        for w in (self.download, self.from_file, self.cancel):
            row.addWidget(w)
        row.addWidget(self.bar, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self._idle()

    def set_backbone(self, name: str, image_size: int | None) -> None:
        """Look up the weights file of ``name`` (in a worker: it asks Keras)."""
        if (name, image_size) == self.shown:
            return
        self.shown = (name, image_size)
        if self.task is not None and self.task.is_running():
            self.task.retire()
        self.weights = None
        self.status.setText("Looking for the ImageNet weights file…")
        self.task = Task(lambda: look_up(name, image_size))
        self.task.done.connect(self._looked_up)
        self.task.failed.connect(lambda msg: self._say(msg.splitlines()[0]))
        self.task.start()

    def start_download(self) -> None:
        """Download the file (resuming a part left by an earlier try)."""
        if self.weights is None or (self.task is not None and self.task.is_running()):
            return
        self.bar.setRange(0, 0)
        self.download.setEnabled(False)
        self.from_file.setEnabled(False)
        self.cancel.setEnabled(True)
        self.status.setText(f"Downloading {self.weights.name}…")
        self.task = Task(lambda task: fetch(task, self.weights), with_report=True)
        self.task.event.connect(self._progress)
        self.task.done.connect(lambda path: self._say(f"Saved {path} (checksum matches).", cached=True))
        self.task.failed.connect(lambda msg: self._say(msg.split(": ", 1)[-1].splitlines()[0]))
        self.task.start()

    def cancel_download(self) -> None:
        """Stop the download; the part fetched so far is kept for next time."""
        if self.task is not None and self.task.is_running():
            self.task.stop()

    def install_file(self, path: str) -> None:
        """Check a local copy of the weights file and put it in Keras' cache."""
        if self.weights is None:
            return
        self.task = Task(lambda: install(self.weights, path))
        self.task.done.connect(lambda dest: self._say(f"Installed {dest} (checksum matches).", cached=True))
        self.task.failed.connect(lambda msg: self._say(msg.split(": ", 1)[-1].splitlines()[0]))
        self.task.start()

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "ImageNet weights file", "", "Weights (*.h5)")
        if path:
            self.install_file(path)

    def _looked_up(self, found) -> None:
        self.weights, cached = found
        if cached:
            self._say(f"ImageNet weights are in {self.weights.path}.", cached=True)
        else:
            part = " (a partial download will resume)" if self.weights.part.is_file() else ""
            self._say(f"ImageNet weights are not downloaded yet: {self.weights.name}{part}.")

    def _progress(self, event) -> None:
        done, total = event
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * done / total))
            self.bar.setFormat(f"{done / 1e6:.1f} of {total / 1e6:.1f} MB")
        else:
            self.bar.setFormat(f"{done / 1e6:.1f} MB")

    def _say(self, text: str, cached: bool = False) -> None:
        self.status.setText(text)
        self._idle(cached)

    def _idle(self, cached: bool = False) -> None:
        self.bar.setRange(0, 1000)
        self.bar.setValue(1000 if cached else 0)
        self.bar.setFormat("in the cache" if cached else "")
        ready = self.weights is not None and not cached
        self.download.setEnabled(ready)
        self.from_file.setEnabled(ready)
        self.cancel.setEnabled(False)
