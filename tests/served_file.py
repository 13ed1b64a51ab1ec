"""A file served over HTTP on localhost, honouring ``Range: bytes=N-`` as servers of weights files do:
the download code is tested against it (no network in tests)."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serve_file(payload: bytes, name: str = "w.h5") -> Iterator[tuple[str, list[str | None]]]:
    """Serve ``payload`` at ``/name``; yields (base URL, the Range header of each request)."""
    requests: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != f"/{name}":
                self.send_error(404)
                return
            asked = self.headers.get("Range")
            requests.append(asked)
            start = int(asked.split("=")[1].rstrip("-")) if asked else 0
            if start >= len(payload):
                self.send_error(416)
                return
            self.send_response(206 if asked else 200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            self.wfile.write(payload[start:])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
