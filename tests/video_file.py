"""A real video file written by Qt's own encoder (QMediaRecorder fed by QVideoFrameInput, FFmpeg
backend), for the tests that play one through Try it's frame source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, QTimer, QUrl
from PySide6.QtGui import QImage

FRAME_US = 100_000  # 10 frames a second


def write_video(path: Path, frames: list[np.ndarray], timeout_ms: int = 20_000) -> Path:
    """Write uint8 RGB ``frames`` (all one size) as Motion-JPEG in AVI, 10 frames a second.

    Frames are sent one at a time, each once the recorder has encoded the one before: sent in a
    burst, the recorder (Qt 6.12) sometimes kept only the first ten.

    Raises:
        RuntimeError: the recorder failed, or did not finish in time.
    """
    from PySide6 import QtMultimedia as qtm

    session, source, recorder = qtm.QMediaCaptureSession(), qtm.QVideoFrameInput(), qtm.QMediaRecorder()
    session.setVideoFrameInput(source)
    session.setRecorder(recorder)
    media_format = qtm.QMediaFormat(qtm.QMediaFormat.FileFormat.AVI)
    media_format.setVideoCodec(qtm.QMediaFormat.VideoCodec.MotionJPEG)
    recorder.setMediaFormat(media_format)
    recorder.setQuality(qtm.QMediaRecorder.Quality.VeryHighQuality)
    recorder.setOutputLocation(QUrl.fromLocalFile(str(path)))
    errors: list[str] = []
    sent = [0]
    recording = qtm.QMediaRecorder.RecorderState.RecordingState

    def send(*_) -> None:
        if sent[0] == len(frames):
            last = (len(frames) - 1) * FRAME_US // 1000
            if recorder.duration() >= last and recorder.recorderState() == recording:
                recorder.stop()
            return
        if sent[0] and recorder.duration() < (sent[0] - 1) * FRAME_US // 1000:
            return  # the one before is not encoded yet
        pixels = np.ascontiguousarray(frames[sent[0]], np.uint8)
        h, w = pixels.shape[:2]
        frame = qtm.QVideoFrame(QImage(pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())
        frame.setStartTime(sent[0] * FRAME_US)
        frame.setEndTime((sent[0] + 1) * FRAME_US)
        if source.sendVideoFrame(frame):
            sent[0] += 1

    loop = QEventLoop()
    source.readyToSendVideoFrame.connect(send)
    recorder.durationChanged.connect(send)
    recorder.errorOccurred.connect(lambda _error, text: (errors.append(text), loop.quit()))
    recorder.recorderStateChanged.connect(
        lambda state: state == qtm.QMediaRecorder.RecorderState.StoppedState and loop.quit()
    )
    recorder.record()
    QTimer.singleShot(0, send)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    if errors or recorder.recorderState() != qtm.QMediaRecorder.RecorderState.StoppedState:
        raise RuntimeError(f"the video was not written: {errors or 'timed out'} ({sent[0]} frames sent)")
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"the recorder reported no error but wrote no {path.name}")
    return path
