"""ImageNet weights on request, against a local HTTP server: progress, checksum, cancel, resume."""

from __future__ import annotations

import hashlib
import http.server
import threading
from typing import ClassVar

import pytest

from tlstudio.core.backbone.weights import (
    WeightsCancelled,
    WeightsError,
    WeightsFile,
    download,
    imagenet_weights_file,
    install_local,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /w.h5, honouring 'Range: bytes=N-' as servers of weights files do."""

    requests: ClassVar[list[str | None]] = []

    def do_GET(self):
        if self.path != "/w.h5":
            self.send_error(404)
            return
        asked = self.headers.get("Range")
        type(self).requests.append(asked)
        start = int(asked.split("=")[1].rstrip("-")) if asked else 0
        if start >= len(PAYLOAD):
            self.send_error(416)
            return
        body = PAYLOAD[start:]
        self.send_response(206 if asked else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def weights(server, tmp_path, file_hash=SHA256):
    return WeightsFile(f"{server}/w.h5", "w.h5", file_hash, tmp_path / "models")


def test_a_download_reports_progress_checks_the_hash_and_lands_in_the_cache(server, tmp_path):
    seen = []
    path = download(weights(server, tmp_path), progress=lambda n, total: seen.append((n, total)))
    assert path.read_bytes() == PAYLOAD and path == tmp_path / "models" / "w.h5"
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 1
    assert not (tmp_path / "models" / "w.h5.part").exists()
    RangeHandler.requests.clear()
    assert download(weights(server, tmp_path)) == path and RangeHandler.requests == []  # cached: no request


def test_cancel_keeps_the_part_and_the_next_try_resumes_from_it(server, tmp_path):
    stop = threading.Event()

    def progress(n, total):
        if n >= len(PAYLOAD) // 4:
            stop.set()

    w = weights(server, tmp_path)
    with pytest.raises(WeightsCancelled):
        download(w, progress=progress, stop=stop)
    kept = w.part.stat().st_size
    assert 0 < kept < len(PAYLOAD) and not w.path.exists()
    assert download(w).read_bytes() == PAYLOAD
    assert RangeHandler.requests[-1] == f"bytes={kept}-"  # resumed, not started again


def test_a_wrong_checksum_leaves_nothing_and_says_so(server, tmp_path):
    w = weights(server, tmp_path, file_hash="0" * 64)
    with pytest.raises(WeightsError, match="checksum"):
        download(w)
    assert not w.path.exists() and not w.part.exists()
    md5 = weights(server, tmp_path, file_hash=hashlib.md5(PAYLOAD).hexdigest())  # Keras ships MD5s too
    assert download(md5).read_bytes() == PAYLOAD


def test_no_server_gives_the_cause_and_the_offline_way(tmp_path):
    w = WeightsFile("http://127.0.0.1:9/w.h5", "w.h5", None, tmp_path / "models")
    with pytest.raises(WeightsError, match="could not download") as err:
        download(w, timeout=2)
    assert "--from FILE" in str(err.value)


def test_a_local_file_is_checked_then_copied_into_the_cache(tmp_path):
    w = WeightsFile("http://unused/w.h5", "w.h5", hashlib.sha256(PAYLOAD).hexdigest(), tmp_path / "models")
    good, bad = tmp_path / "good.h5", tmp_path / "bad.h5"
    good.write_bytes(PAYLOAD)
    bad.write_bytes(b"something else")
    with pytest.raises(WeightsError, match="checksum differs"):
        install_local(w, bad)
    assert install_local(w, good).read_bytes() == PAYLOAD and w.is_cached()


def test_keras_is_asked_which_file_it_wants_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    w = imagenet_weights_file("MobileNetV3Small")
    assert w.url.startswith("https://") and w.name.endswith(".h5") and w.name in w.url
    assert len(w.file_hash) in (32, 64) and w.cache_dir == tmp_path / "keras" / "models"
    assert not w.path.exists()
    with pytest.raises(WeightsError, match="not a Keras Applications"):
        imagenet_weights_file("NoSuchNet")
