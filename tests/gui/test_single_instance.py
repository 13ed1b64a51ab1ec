"""A project file offered to the running TL Studio opens there (or, while it trains, in a new window)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from PySide6.QtCore import QDir

from tlstudio.gui.app import application_icon
from tlstudio.gui.single_instance import ProjectServer, forward


def offered(qtbot, path: str, name: str) -> bool:
    """Offer ``path`` from a second process, as a newly started ``tlstudio`` does (a thread of this
    process would hold the GIL in its blocking socket calls while the server here waits for it)."""
    code = (
        "import sys\nfrom PySide6.QtCore import QCoreApplication\napp = QCoreApplication([])\n"
        "from tlstudio.gui.single_instance import forward\n"
        f"sys.exit(0 if forward({path!r}, {name!r}, timeout_ms=5000) else 3)"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    qtbot.waitUntil(lambda: process.poll() is not None, timeout=30000)
    assert process.returncode in (0, 3)
    return process.returncode == 0


def test_the_running_app_opens_an_offered_project_and_answers(qtbot, tmp_path):
    name = f"tlstudio-test-{uuid.uuid4().hex[:8]}"
    opened: list[str] = []
    server = ProjectServer(lambda p: opened.append(p) or True, name=name)
    assert server.listening
    assert offered(qtbot, str(tmp_path / "a.tlstudio.json"), name)
    assert opened == [str((tmp_path / "a.tlstudio.json").resolve())]

    server._open = lambda p: False  # training: the file goes to a new window instead
    assert not offered(qtbot, str(tmp_path / "b.tlstudio.json"), name)

    second = ProjectServer(lambda p: True, name=name)  # a second window: not the one files go to
    assert not second.listening
    server.close()
    second.close()


def test_with_no_app_running_the_offer_fails_fast_and_a_stale_socket_is_replaced(qtbot):
    name = f"tlstudio-test-{uuid.uuid4().hex[:8]}"
    assert forward("x.tlstudio.json", name, timeout_ms=3000) is False
    stale = os.path.join(QDir.tempPath(), name)  # a crashed TL Studio's socket file
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(stale)
    sock.close()
    assert Path(stale).exists()
    server = ProjectServer(lambda p: True, name=name)
    assert server.listening
    server.close()


def test_the_window_icon_has_every_size():
    sizes = {s.width() for s in application_icon().availableSizes()}
    assert {16, 32, 48, 256, 512} <= sizes
