"""Try it's live source: a real video file, written by Qt's encoder, plays through the frame
source; its frames are tried one at a time (the rest skipped) by the same worker path as dropped
images, with the top classes and a Grad-CAM overlay; Stop stops. Without QtMultimedia the row is
hidden; without a camera its button says why."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from video_file import write_video

from tlstudio.core.project import Project
from tlstudio.gui.frame_source import FrameSourceError, multimedia
from tlstudio.gui.state import AppState
from tlstudio.gui.try_panel import TryPanel
from tlstudio.gui.worker import running_tasks

QTM, WHY = multimedia()
if QTM is None and not os.environ.get("CI"):  # CI installs it (the test extra, .ci/run's libpulse0)
    pytest.skip(WHY, allow_module_level=True)

COLOURS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}
LONG = 120_000


def clip(tmp_path, seconds_each: float = 0.8):
    """Red, then green, then blue frames of 64×48 with noise, 10 a second."""
    rng = np.random.default_rng(0)
    frames = [
        np.clip(rng.normal(colour, 12, (48, 64, 3)), 0, 255).astype(np.uint8)
        for colour in COLOURS.values()
        for _ in range(round(seconds_each * 10))
    ]
    return write_video(tmp_path / "clip.avi", frames)


@pytest.fixture
def panel(qtbot, tmp_path, probe_run, colour_data):
    project = Project(
        path=tmp_path / "p.tlstudio.json", data_dir=str(shutil.copytree(colour_data, tmp_path / "d"))
    )
    project.record_run(probe_run, "completed", {})
    widget = TryPanel(state=AppState(project))
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.stop_live()
    if widget.task is not None:
        widget.task.wait()


@pytest.mark.slow
def test_a_video_file_is_tried_frame_by_frame_through_the_same_path_and_stop_stops(
    panel, qtbot, tmp_path, probe_run
):
    from tlstudio.core.results.try_it import Frame, Tryout, overlay_for

    video = clip(tmp_path)
    panel.tryout = Tryout(probe_run)  # loaded as after a first image: a slow load cannot eat the clip
    live, source = panel.live, panel.live.source
    assert live.isVisibleTo(panel) and live.video.isEnabled() and not live.stop.isEnabled()
    busy: list[int] = []  # tasks running just after each frame was handed over: never more than one
    source.frame.connect(lambda *_: busy.append(len(running_tasks())))
    live.play_video(video)
    assert source.is_active() and live.stop.isEnabled()
    qtbot.waitUntil(lambda: not source.is_active(), timeout=LONG)
    qtbot.waitUntil(lambda: not panel.task.is_running(), timeout=LONG)
    assert "end of the video" in live.status.text()
    assert panel.live_tried >= 2 and panel.live_tried + panel.live_skipped == source.sent >= 3
    assert source.seen > source.sent  # throttled: 24 frames came in 2.4 s, at most 5 a second passed
    assert busy and max(busy) <= 1
    assert "frames tried" not in live.status.text() and not live.stop.isEnabled()

    # what is shown came from the video, through the same core path as a dropped image
    frame = panel.showing_frame
    assert frame is not None and frame.shape == (48, 64, 3)
    assert min(np.abs(frame.mean((0, 1)) - c).max() for c in COLOURS.values()) < 25
    words = panel.verdict.text()
    assert "clip.avi at " in words and "probability" in words and words.count("0.") >= 3
    name = words.split("<b>")[1].split("</b>")[0]
    again = Tryout(probe_run).classify_frame(Frame(name, frame))
    assert f"{again.label}: {again.top[0][1]:.3f}" in words
    shown = panel.picture.pixmap().toImage().convertToFormat(QImage.Format.Format_RGB888)
    assert (shown.width(), shown.height()) == (360, 270)
    pixels = np.frombuffer(shown.constBits(), np.uint8, count=270 * shown.bytesPerLine())
    pixels = pixels.reshape(270, -1)[:, : 360 * 3].reshape(270, 360, 3).astype(int)
    assert again.heat is not None
    expected = overlay_for(frame, again.heat, 360).astype(int)  # the Grad-CAM overlay of that frame
    plain = np.asarray(Image.fromarray(frame).resize((360, 270), Image.Resampling.NEAREST), int)
    assert np.abs(pixels - expected).mean() < 2 < 10 < np.abs(pixels - plain).mean()

    # a frame that comes while one is being tried is skipped, not queued (first every task of the
    # video ends and what it sent is shown: on a loaded machine its last result can still be queued)
    qtbot.waitUntil(lambda: not running_tasks(), timeout=LONG)
    qtbot.wait(300)
    tried, skipped = panel.live_tried, panel.live_skipped
    panel.try_frame("first", frame)
    panel.try_frame("second", frame)
    assert (panel.live_tried, panel.live_skipped) == (tried + 1, skipped + 1)
    qtbot.waitUntil(lambda: not panel.task.is_running(), timeout=LONG)
    assert "<b>first</b>" in panel.verdict.text()

    # the frame shown can go into a class folder, like an image
    panel.classes.setCurrentText("green")
    panel.copy_current()
    assert any(p.name.startswith("frame") for p in (tmp_path / "d" / "green").iterdir())

    # Stop: the source ends at once and nothing more is tried
    live.play_video(video)
    qtbot.waitUntil(lambda: source.sent >= 1, timeout=LONG)
    qtbot.mouseClick(live.stop, Qt.MouseButton.LeftButton)
    assert not source.is_active() and "stopped" in live.status.text() and not live.stop.isEnabled()
    sent, tried = source.sent, panel.live_tried
    qtbot.wait(600)
    assert (source.sent, panel.live_tried) == (sent, tried)


@pytest.mark.slow
def test_a_file_that_is_no_video_is_refused_with_the_reason(panel, qtbot, tmp_path):
    with pytest.raises(FrameSourceError, match="no such file"):
        panel.live.source.start_video(tmp_path / "missing.avi")
    bad = tmp_path / "notes.avi"
    bad.write_text("not a video")
    panel.live.play_video(bad)
    qtbot.waitUntil(lambda: not panel.live.is_active(), timeout=30_000)
    assert "cannot play notes.avi" in panel.live.status.text() and panel.live_tried == 0


def test_the_camera_button_says_why_when_there_is_no_camera(qtbot, tmp_path, monkeypatch):
    widget = TryPanel(state=AppState(Project(path=tmp_path / "p.tlstudio.json")))
    qtbot.addWidget(widget)
    assert widget.live.source is None  # QtMultimedia loads when the row is first shown, not before
    assert widget.live.set_up() and widget.live.source is not None
    assert not widget.live.camera.isEnabled() and not widget.live.video.isEnabled()  # no run yet
    widget.live.set_has_run(True)
    if QTM.QMediaDevices.videoInputs():
        assert widget.live.camera.isEnabled()
    else:
        assert not widget.live.camera.isEnabled() and "No camera" in widget.live.camera.toolTip()
        with pytest.raises(FrameSourceError, match="No camera"):
            widget.live.source.start_camera()
    assert widget.live.video.isEnabled()
    import PySide6

    monkeypatch.delattr(PySide6, "QtMultimedia", raising=False)
    monkeypatch.setitem(sys.modules, "PySide6.QtMultimedia", None)
    without = TryPanel(state=AppState(Project(path=tmp_path / "q.tlstudio.json")))
    qtbot.addWidget(without)
    without.show()
    assert without.live.source is None and not without.live.isVisible()
    assert "tlstudio[camera]" in without.live.unavailable
