"""Pretrained weights in the Backbone panel: for a Keras Applications backbone, whether its ImageNet
weights are in Keras' cache, a download with a progress bar and Cancel (resumed next time), or a
file the user downloaded elsewhere; for a named KerasHub preset, whether it is in KerasHub's cache
and a download with progress and Cancel through KerasHub's own downloader."""

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

from tlstudio.gui.worker import Task, failure_line, reason


def look_up(name: str, image_size: int | None):
    """Worker job: the weights file Keras wants and whether it is already there."""
    from tlstudio.core.backbone.weights import imagenet_weights_file

    weights = imagenet_weights_file(name, image_size)
    return weights, weights.is_cached()


def fetch(task: Task, weights):
    """Worker job: download with progress events; ``task.stop()`` cancels."""
    from tlstudio.core.backbone.weights import download

    return download(weights, progress=lambda n, total: task.report((n, total)), stop=task.stop_token)


def look_up_preset(source: str):
    """Worker job: whether a KerasHub preset's weights are on this machine (None: unknown offline)."""
    from tlstudio.core.backbone.kerashub_fetch import preset_weights_cached

    return preset_weights_cached(source)


def fetch_preset(task: Task, source: str) -> str:
    """Worker job: download a preset's weights with progress events; ``task.stop()`` cancels."""
    from tlstudio.core.backbone.kerashub_fetch import download_preset

    download_preset(source, progress=lambda n, total: task.report((n, total)), stop=task.stop_token)
    return source


def install(weights, source: str):
    """Worker job: check a local copy and put it in the cache."""
    from tlstudio.core.backbone.weights import install_local

    return install_local(weights, source)


class WeightsBox(QWidget):
    """Shown for a Keras Applications backbone with ImageNet weights, and for a named KerasHub preset."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.weights = None
        self.preset: str | None = None  # a KerasHub preset's name or handle (its mode of the box)
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
        self._switch((name, image_size), preset=None)
        self.status.setText("Looking for the ImageNet weights file…")
        self.task = Task(lambda: look_up(name, image_size))
        self.task.done.connect(self._looked_up)
        self.task.failed.connect(lambda msg: self._say(failure_line(msg)))
        self.task.start()

    def set_preset(self, source: str) -> None:
        """Look up whether a KerasHub preset's weights are in KerasHub's cache (in a worker)."""
        if (source, None) == self.shown:
            return
        self._switch((source, None), preset=source)
        self.status.setText("Looking in KerasHub's cache…")
        self.task = Task(lambda: look_up_preset(source))
        self.task.done.connect(self._preset_looked_up)
        self.task.failed.connect(lambda msg: self._say(failure_line(msg)))
        self.task.start()

    def _switch(self, shown: tuple[str, int | None], preset: str | None) -> None:
        self.shown, self.preset = shown, preset
        if self.task is not None and self.task.is_running():
            self.task.retire()
        self.weights = None
        self.from_file.setVisible(preset is None)
        self.download.setText("Download the preset" if preset else "Download ImageNet weights")
        self.download.setToolTip(
            "Into KerasHub's cache (~/.cache/kagglehub), by KerasHub's own downloader; resumable"
            if preset
            else "Into Keras' cache (~/.keras/models), checked against Keras' hash; resumable"
        )

    def start_download(self) -> None:
        """Download the file (resuming a part left by an earlier try)."""
        if self.task is not None and self.task.is_running():
            return
        if self.preset is not None:
            self._download_preset(self.preset)
            return
        if self.weights is None:
            return
        weights = self.weights  # (the box may show another backbone by the time it ends)
        self._busy(f"Downloading {weights.name}…")
        self.task = Task(lambda task: fetch(task, weights), with_report=True)
        self.task.event.connect(self._progress)
        self.task.done.connect(lambda path: self._say(f"Saved {path} ({weights.check}).", cached=True))
        self.task.failed.connect(lambda msg: self._say(reason(msg)))
        self.task.start()

    def _download_preset(self, source: str) -> None:
        self._busy(f"Downloading {source} (KerasHub)…")
        self.task = Task(lambda task: fetch_preset(task, source), with_report=True)
        self.task.event.connect(self._progress)
        self.task.done.connect(
            lambda _: self._say("The preset's weights are in KerasHub's cache.", cached=True)
        )
        self.task.failed.connect(lambda msg: self._say(reason(msg), preset=True))
        self.task.start()

    def _busy(self, text: str) -> None:
        self.bar.setRange(0, 0)
        self.download.setEnabled(False)
        self.from_file.setEnabled(False)
        self.cancel.setEnabled(True)
        self.status.setText(text)

    def _preset_looked_up(self, cached: bool | None) -> None:
        if cached:
            self._say("The preset's weights are in KerasHub's cache.", cached=True)
        elif cached is None:
            self._say(
                "KerasHub fetches this preset when a run starts (offline, its cache cannot be checked).",
                preset=True,
            )
        else:
            self._say(
                "The preset's weights are not downloaded yet (KerasHub's cache: ~/.cache/kagglehub).",
                preset=True,
            )

    def cancel_download(self) -> None:
        """Stop the download; the part fetched so far is kept for next time."""
        if self.task is not None and self.task.is_running():
            self.task.stop()

    def install_file(self, path: str) -> None:
        """Check a local copy of the weights file and put it in Keras' cache."""
        if self.weights is None:
            return
        weights = self.weights
        self.task = Task(lambda: install(weights, path))
        self.task.done.connect(lambda dest: self._say(f"Installed {dest} ({weights.check}).", cached=True))
        self.task.failed.connect(lambda msg: self._say(reason(msg)))
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

    def _say(self, text: str, cached: bool = False, preset: bool = False) -> None:
        self.status.setText(text)
        self._idle(cached, preset)

    def _idle(self, cached: bool = False, preset: bool = False) -> None:
        self.bar.setRange(0, 1000)
        self.bar.setValue(1000 if cached else 0)
        self.bar.setFormat("in the cache" if cached else "")
        ready = (self.weights is not None or preset) and not cached
        self.download.setEnabled(ready)
        self.from_file.setEnabled(ready)
        self.cancel.setEnabled(False)
