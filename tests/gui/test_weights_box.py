"""The Backbone panel's ImageNet weights box: a download with progress into the cache, and cancel."""

from __future__ import annotations

import hashlib

import pytest
from served_file import serve_file

from tlstudio.core.backbone.weights import WeightsFile
from tlstudio.gui.weights_box import WeightsBox

PAYLOAD = bytes(range(256)) * 8192  # 2 MiB


@pytest.fixture
def url():
    with serve_file(PAYLOAD) as (base, _):
        yield f"{base}/w.h5"


def test_download_shows_progress_and_ends_in_the_cache(qtbot, url, tmp_path):
    box = WeightsBox()
    qtbot.addWidget(box)
    box._looked_up((WeightsFile(url, "w.h5", hashlib.sha256(PAYLOAD).hexdigest(), tmp_path), False))
    assert "not downloaded yet" in box.status.text() and box.download.isEnabled()
    formats = []
    box.bar.valueChanged.connect(lambda _: formats.append(box.bar.format()))
    box.download.click()
    qtbot.waitUntil(lambda: not box.task.is_running(), timeout=30_000)
    qtbot.waitUntil(lambda: "checksum matches" in box.status.text(), timeout=5000)
    assert (tmp_path / "w.h5").read_bytes() == PAYLOAD
    assert any(" of 2.1 MB" in f for f in formats) and box.bar.format() == "in the cache"
    assert not box.download.isEnabled()


def test_cancel_keeps_the_part_for_next_time(qtbot, url, tmp_path):
    box = WeightsBox()
    qtbot.addWidget(box)
    box._looked_up((WeightsFile(url, "w.h5", None, tmp_path), False))
    box.task = None
    box.start_download()
    box.cancel_download()  # at once: the first chunk may or may not have arrived
    qtbot.waitUntil(lambda: not box.task.is_running(), timeout=30_000)
    qtbot.waitUntil(lambda: "cancelled" in box.status.text(), timeout=5000)
    assert not (tmp_path / "w.h5").exists() and box.download.isEnabled()
