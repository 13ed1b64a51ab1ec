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


def fake_kagglehub_download(monkeypatch, chunks: int, delay: float):
    """Stand in for a named preset's download: kagglehub's own progress bar (its module's ``tqdm``,
    which the app's hook replaces) advancing chunk by chunk, as its downloader does."""
    import time

    pytest.importorskip("keras_hub")
    from kagglehub import clients

    from tlstudio.core.backbone import kerashub_fetch

    def fetch(source):
        with clients.tqdm(total=chunks * 1_000_000, initial=0) as bar:
            for _ in range(chunks):
                time.sleep(delay)
                bar.update(1_000_000)

    monkeypatch.setattr(kerashub_fetch, "fetch_preset_weights", fetch)


def test_a_kerashub_preset_downloads_with_progress_and_cancel(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    fake_kagglehub_download(monkeypatch, chunks=5, delay=0.05)
    box = WeightsBox()
    qtbot.addWidget(box)
    box.set_preset("kerashub:dinov2_small")
    qtbot.waitUntil(lambda: "not downloaded yet" in box.status.text(), timeout=30_000)
    assert box.download.text() == "Download the preset" and not box.from_file.isVisibleTo(box)
    formats = []
    box.bar.valueChanged.connect(lambda _: formats.append(box.bar.format()))
    box.download.click()
    qtbot.waitUntil(lambda: "in KerasHub's cache" in box.status.text(), timeout=30_000)
    assert "3.0 of 5.0 MB" in formats and box.bar.format() == "in the cache"

    fake_kagglehub_download(monkeypatch, chunks=400, delay=0.05)
    box.shown = None
    box.set_preset("kerashub:dinov2_small")
    qtbot.waitUntil(lambda: box.download.isEnabled(), timeout=30_000)
    box.download.click()
    qtbot.waitUntil(
        lambda: "1.0 of 400.0 MB" in box.bar.format() or "2.0" in box.bar.format(), timeout=30_000
    )
    box.cancel_download()
    qtbot.waitUntil(lambda: "cancelled" in box.status.text(), timeout=10_000)
    assert box.download.isEnabled() and box.bar.value() == 0
