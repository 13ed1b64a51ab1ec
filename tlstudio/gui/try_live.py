"""Try it's live row: a camera, or a video file played through the same frame path, and Stop.

Shown only where QtMultimedia imports (``tlstudio[camera]``); the Camera button is disabled, with
the reason as its tooltip, where the system lists no camera.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QWidget

from tlstudio.core.settings import TRY_LIVE_INTERVAL_MS
from tlstudio.gui.frame_source import FrameSource, FrameSourceError, camera_problem, multimedia

if TYPE_CHECKING:
    import numpy as np

VIDEO_FILTER = "Videos (*.mp4 *.m4v *.mov *.avi *.mkv *.webm *.ogv *.mpg *.mpeg);;All files (*)"


class LiveControls(QWidget):
    """Camera, Video file… and Stop over one ``FrameSource`` (``source``), passing its ``frame(name,
    pixels)`` on. QtMultimedia is loaded when the row is first shown (or ``set_up`` is called), not
    with the window (it costs 60–160 ms); without it ``source`` stays None, the row hides and
    ``unavailable`` says why."""

    frame = Signal(str, object)

    def __init__(self, parent: QWidget | None = None, interval_ms: int = TRY_LIVE_INTERVAL_MS):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.source: FrameSource | None = None
        self.unavailable = ""
        self._set = False
        self.camera = QPushButton("Camera")
        self.camera.clicked.connect(self.start_camera)
        self.video = QPushButton("Video file…")
        self.video.setToolTip("Play a video file and try its frames as they come")
        self.video.clicked.connect(self._ask_video)
        self.stop = QPushButton("Stop")
        self.stop.setToolTip("Stop the camera or video")
        self.stop.clicked.connect(lambda: self.is_active() and self.source.stop())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.camera, self.video, self.stop):
            w.setEnabled(False)
            layout.addWidget(w)
        layout.addWidget(self.status, 1)
        self.has_run = False

    def showEvent(self, event) -> None:
        self.set_up()
        super().showEvent(event)

    def set_up(self) -> bool:
        """Load QtMultimedia and make the source, once; whether the row can be used."""
        if not self._set:
            self._set = True
            qtm, self.unavailable = multimedia()
            if qtm is None:
                self.hide()
                return False
            self.source = FrameSource(self.interval_ms, self)
            self.source.frame.connect(self.frame)
            self.source.stopped.connect(self._stopped)
            self._devices = qtm.QMediaDevices(self)  # a camera plugged in or out: the button follows
            self._devices.videoInputsChanged.connect(self.update_buttons)
            self.update_buttons()
        return self.source is not None

    def is_active(self) -> bool:
        """Whether a camera or video is running."""
        return self.source is not None and self.source.is_active()

    def set_has_run(self, has_run: bool) -> None:
        """Enable the sources only while a run can be tried (and stop one that runs without)."""
        if has_run == self.has_run:
            return
        self.has_run = has_run
        if not has_run and self.is_active():
            self.source.stop("no run to try")
        self.update_buttons()

    def update_buttons(self) -> None:
        """Camera only with a camera and a run; Video file… with a run; Stop while one runs."""
        if self.source is None:
            return
        problem = camera_problem()
        self.camera.setEnabled(self.has_run and not problem)
        self.camera.setToolTip(problem or "Try the camera's picture as it comes")
        self.video.setEnabled(self.has_run)
        self.stop.setEnabled(self.is_active())

    def start_camera(self) -> None:
        """Start the default camera."""
        self._start(lambda: self.source.start_camera())

    def play_video(self, path) -> None:
        """Play a video file through the frame path."""
        self._start(lambda: self.source.start_video(path))

    def _start(self, start) -> None:
        if not self.set_up():
            self.status.setText(f"<span style='color:#b00'>{self.unavailable}</span>")
            return
        try:
            start()
        except FrameSourceError as err:
            self.status.setText(f"<span style='color:#b00'>{err}</span>")
            return
        self.status.setText(f"Live: {self.source.name}")
        self.update_buttons()

    def show_counts(self, tried: int, skipped: int) -> None:
        """The status line while live: frames tried, and those skipped while one was being tried."""
        self.status.setText(f"Live: {self.source.name} — {tried} frames tried, {skipped} skipped while busy")

    def _stopped(self, why: str) -> None:
        self.status.setText(f"{self.source.name}: {why}.")
        self.update_buttons()

    def _ask_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A video to try", "", VIDEO_FILTER)
        if path:
            self.play_video(path)


def save_frame(pixels: np.ndarray) -> Path:
    """A frame (uint8 RGB) saved as ``frame.png`` in a new temporary folder, to copy into a class."""
    from PIL import Image

    path = Path(tempfile.mkdtemp(prefix="tlstudio-frame-")) / "frame.png"
    Image.fromarray(pixels).save(path)
    return path
