"""Frames from a camera or a video file for Try it, as RGB arrays at a throttled rate (QtMultimedia,
an optional part of Qt: ``pip install 'tlstudio[camera]'``; imported only when first asked for).

Both sources take the same path: a QVideoSink receives the frames (from a QCamera in a
QMediaCaptureSession, or from a QMediaPlayer), and ``FrameSource`` passes on at most one per
``interval_ms`` as a name and uint8 RGB pixels; what tries the frames drops those that come while
it is busy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QElapsedTimer, QLoggingCategory, QObject, QUrl, Signal
from PySide6.QtGui import QImage

from tlstudio.core.settings import TRY_LIVE_INTERVAL_MS

if TYPE_CHECKING:
    import numpy as np

INSTALL_HINT = "pip install 'tlstudio[camera]'"
QUIET_MULTIMEDIA = "qt.multimedia.symbolsresolver=false\nqt.multimedia.ffmpeg.info=false"


class FrameSourceError(Exception):
    """A source that cannot start (no QtMultimedia, no camera, no such file); the message says why."""


def multimedia():
    """``(QtMultimedia, "")``, or ``(None, why)`` when it cannot be imported (it ships in
    pyside6-addons, and on Linux needs the system's PulseAudio client library, libpulse0)."""
    # its back end lists each optional system library it did not find (PipeWire, VA-API) at every start
    QLoggingCategory.setFilterRules(QUIET_MULTIMEDIA)  # QT_LOGGING_RULES still overrides this
    try:
        from PySide6 import QtMultimedia
    except ImportError as err:
        return None, f"the camera and video need QtMultimedia ({INSTALL_HINT}): {err}"
    return QtMultimedia, ""


def camera_problem() -> str:
    """Why no camera can be used ("" when one can)."""
    qtm, why = multimedia()
    if qtm is None:
        return why
    if not qtm.QMediaDevices.videoInputs():
        return "No camera found: the system lists no video input."
    return ""


def frame_pixels(frame) -> np.ndarray | None:
    """A QVideoFrame's picture as uint8 RGB (a copy), or None when it has none."""
    import numpy as np  # (loaded with the first frame, not with the window)

    image = frame.toImage()
    if image.isNull():
        return None
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    rows = np.frombuffer(image.constBits(), np.uint8, count=h * stride).reshape(h, stride)
    return rows[:, : 3 * w].reshape(h, w, 3).copy()


class FrameSource(QObject):
    """A camera or a video file, sending at most one ``frame(name, pixels)`` per ``interval_ms``.

    ``stopped(why)`` when it ends: asked to ("stopped"), at the end of the video, or on an error.
    ``seen`` counts the frames that arrived, ``sent`` those passed on.

    Example:
        >>> source = FrameSource()  # doctest: +SKIP
        >>> source.frame.connect(lambda name, pixels: print(name, pixels.shape))  # doctest: +SKIP
        >>> source.start_video("clip.mp4")  # doctest: +SKIP
    """

    frame = Signal(str, object)  # e.g. "clip.mp4 at 1.2 s", uint8 RGB pixels (height, width, 3)
    stopped = Signal(str)

    def __init__(self, interval_ms: int = TRY_LIVE_INTERVAL_MS, parent: QObject | None = None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.name = ""  # what plays: "camera (its name)" or the video file's name
        self.seen = self.sent = 0
        self._device = None  # the running QCamera or QMediaPlayer
        self._keep: list[QObject] = []  # the Qt objects of the running source
        self._clock = QElapsedTimer()

    def is_active(self) -> bool:
        """Whether a camera or video is running."""
        return self._device is not None

    def start_camera(self) -> None:
        """Start the system's default camera.

        Raises:
            FrameSourceError: no QtMultimedia, or no camera.
        """
        problem = camera_problem()
        if problem:
            raise FrameSourceError(problem)
        qtm, _ = multimedia()
        self.stop()
        device = qtm.QMediaDevices.defaultVideoInput()
        camera = qtm.QCamera(device, self)  # owned by self: deleted by Qt, never inside its own signal
        session = qtm.QMediaCaptureSession(self)
        session.setCamera(camera)
        camera.errorOccurred.connect(lambda _error, text: self.stop(f"camera error: {text}"))
        self._begin(f"camera ({device.description()})", camera, session, qtm)
        session.setVideoSink(self._keep[-1])
        camera.start()

    def start_video(self, path: str | Path) -> None:
        """Play a video file (any format Qt's media backend decodes) once through.

        Raises:
            FrameSourceError: no QtMultimedia, or no such file.
        """
        qtm, why = multimedia()
        if qtm is None:
            raise FrameSourceError(why)
        path = Path(path)
        if not path.is_file():
            raise FrameSourceError(f"{path}: no such file")
        self.stop()
        player = qtm.QMediaPlayer(self)
        player.errorOccurred.connect(lambda _error, text: self.stop(f"cannot play {path.name}: {text}"))
        player.mediaStatusChanged.connect(lambda status: self._media_status(qtm, status))
        self._begin(path.name, player, None, qtm)
        player.setVideoSink(self._keep[-1])
        player.setSource(QUrl.fromLocalFile(str(path.absolute())))
        player.play()

    def _begin(self, name: str, device: QObject, session: QObject | None, qtm) -> None:
        sink = qtm.QVideoSink(self)
        sink.videoFrameChanged.connect(self._on_frame)  # a slot of self: queued from a decoder thread
        self.name, self.seen, self.sent = name, 0, 0
        self._device = device
        self._keep = [o for o in (device, session, sink) if o is not None]
        self._clock.invalidate()

    def _media_status(self, qtm, status) -> None:
        statuses = qtm.QMediaPlayer.MediaStatus
        if status == statuses.EndOfMedia:
            self.stop("end of the video")
        elif status == statuses.InvalidMedia:
            self.stop(f"cannot play {self.name}: not a video Qt can decode")
        elif status == statuses.LoadedMedia and self._device is not None and not self._device.hasVideo():
            self.stop(f"{self.name} has no video stream")

    def _on_frame(self, video_frame) -> None:
        if self._device is None:  # a frame queued before stop
            return
        self.seen += 1
        if self._clock.isValid() and self._clock.elapsed() < self.interval_ms:
            return
        pixels = frame_pixels(video_frame)
        if pixels is None:
            return
        self._clock.restart()
        self.sent += 1
        if self.name.startswith("camera"):
            name = f"camera frame {self.seen}"
        else:
            name = f"{self.name} at {max(video_frame.startTime(), 0) / 1e6:.1f} s"
        self.frame.emit(name, pixels)

    def stop(self, why: str = "stopped") -> None:
        """Stop the camera or video (nothing when none runs); ``stopped(why)`` follows."""
        device, keep = self._device, self._keep
        if device is None:
            return
        self._device, self._keep = None, []
        device.stop()
        for obj in keep:
            obj.deleteLater()
        self.stopped.emit(why)
