"""The weights downloader against hostile servers on 127.0.0.1: a body without end is refused at its
bound (the part removed), a server that trickles or falls silent is given up on within its stall
timeout (the part kept for the next try), and a declared size beyond the bound is refused before a byte
is written."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from tlstudio.core.backbone.weights import WeightsError, WeightsFile, download

MiB = 1 << 20


@contextlib.contextmanager
def hostile_server(kind: str) -> Iterator[str]:
    """Serve ``/w.h5`` badly: ``endless`` (no Content-Length, bytes until the client leaves), ``trickle``
    (1 MiB declared, a byte every 0.1 s), ``silent`` (headers, then nothing), ``huge`` (10 GB declared)."""
    closing = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            self.send_response(200)
            if kind == "trickle":
                self.send_header("Content-Length", str(MiB))
            elif kind == "huge":
                self.send_header("Content-Length", str(10 * 10**9))
            elif kind == "negative":
                self.send_header("Content-Length", "-5")
            self.end_headers()
            with contextlib.suppress(OSError):
                if kind == "endless":
                    block = b"\0" * (1 << 16)
                    for _ in range(64 * 1024):  # 4 GiB at most, in case the client never stops
                        if closing.is_set():
                            return
                        self.wfile.write(block)
                elif kind == "trickle":
                    while not closing.wait(0.1):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                elif kind == "negative":
                    self.wfile.write(b"<html>not weights</html>")
                elif kind in ("silent", "huge"):
                    closing.wait(30)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/w.h5"
    finally:
        closing.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def weights(url, tmp_path, size=None):
    return WeightsFile(url, "w.h5", None, tmp_path / "models", size)


def test_an_endless_body_is_refused_at_the_bound_and_its_part_removed(tmp_path):
    with hostile_server("endless") as url:
        w = weights(url, tmp_path)
        with pytest.raises(
            WeightsError, match=r"sent more than 2,097,152 bytes .*refused, and the part removed"
        ):
            download(w, max_bytes=2 * MiB)
        assert not w.part.exists() and not w.path.exists()
        sized = weights(url, tmp_path, size=MiB)  # the file's size, when known, is the bound
        with pytest.raises(WeightsError, match=r"more than 1,048,576 bytes"):
            download(sized)
        assert not sized.part.exists()


def test_a_trickling_body_stalls_out_within_seconds_and_keeps_its_part(tmp_path):
    seen = []
    with hostile_server("trickle") as url:
        w = weights(url, tmp_path)
        began = time.monotonic()
        with pytest.raises(
            WeightsError, match=r"stalled at \d+ of 1,048,576 bytes .*bytes in 1 s.*try again"
        ):
            download(w, progress=lambda n, total: seen.append((n, total)), timeout=1)
        assert time.monotonic() - began < 10
    assert seen and seen[-1][1] == MiB  # progress was reported as the bytes came
    assert 0 < w.part.stat().st_size < MiB  # kept: the next try resumes from it


def test_a_silent_server_times_out_with_what_to_do(tmp_path):
    with hostile_server("silent") as url:
        began = time.monotonic()
        with pytest.raises(WeightsError, match=r"stalled at 0 bytes \(the server sent nothing for 1 s\)"):
            download(weights(url, tmp_path), timeout=1)
        assert time.monotonic() - began < 10


def test_a_declared_size_beyond_the_bound_is_refused_before_a_byte_is_written(tmp_path):
    with hostile_server("huge") as url:
        w = weights(url, tmp_path)
        with pytest.raises(WeightsError, match=r"offers 10,000,000,000 bytes .*nothing was downloaded"):
            download(w, timeout=5)
        assert not w.part.exists()


def test_a_runaway_part_from_an_earlier_try_is_not_resumed(tmp_path):
    """A ``.part`` beyond the bound (left by an unbounded download) is dropped, not resumed from."""
    from served_file import serve_file

    payload = bytes(range(256)) * 1024
    with serve_file(payload) as (base, requests):
        w = weights(f"{base}/w.h5", tmp_path, size=len(payload))
        w.cache_dir.mkdir(parents=True)
        w.part.write_bytes(b"\0" * (len(payload) + 1))
        with pytest.raises(WeightsError, match="not an HDF5"):  # fetched afresh, then checked
            download(w)
        assert requests == [None]  # no Range: the runaway part was not resumed from


def test_a_negative_declared_size_counts_as_none(tmp_path):
    with hostile_server("negative") as url:
        w = weights(url, tmp_path)
        with pytest.raises(WeightsError, match="not an HDF5 weights file: it was removed"):
            download(w, timeout=5)
        assert not w.part.exists()
