"""Project files open in the TL Studio that is already running.

The first window listens on a local socket named per user (``QLocalServer``). Started with a project
file, ``tlstudio`` first offers the file to that window: when it takes it (raised, the project
shown) the new process exits at once; when none runs, or the running one is training (its run keeps
its project), the file opens in a new window. ``tlstudio`` without a file always opens a new window.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

OPENED, BUSY = "opened", "busy"


def server_name() -> str:
    """The socket's name: one per user, so two users of a machine never meet."""
    user = "".join(c for c in getpass.getuser() if c.isalnum()) or "user"
    return f"tlstudio-{user}"


def forward(path: str, name: str | None = None, timeout_ms: int = 1500) -> bool:
    """Offer a project file to a running TL Studio.

    Args:
        path: the project file.
        name: the socket's name (default: ``server_name()``).
        timeout_ms: how long to wait for each step before deciding that none is running.

    Returns:
        True when a running TL Studio opened it; False when none runs, or it declined (training).
    """
    socket = QLocalSocket()
    socket.connectToServer(name or server_name())
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write((json.dumps({"open": str(Path(path).resolve())}) + "\n").encode())
    if not socket.waitForBytesWritten(timeout_ms):
        return False
    answer = b""
    while not answer.endswith(b"\n"):
        if not socket.bytesAvailable() and not socket.waitForReadyRead(timeout_ms):
            break  # (an answer that came with the write is already buffered: no new readyRead)
        answer += bytes(socket.readAll().data())
    socket.disconnectFromServer()
    return answer.strip().decode(errors="replace") == OPENED


class ProjectServer(QObject):
    """Listens for project files offered by newly started ``tlstudio`` processes.

    Args:
        open_project: called with the file's path; returns False to decline (the sender then opens
            its own window).
        name: the socket's name (default: ``server_name()``).
    """

    def __init__(self, open_project: Callable[[str], bool], name: str | None = None, parent=None):
        super().__init__(parent)
        self._open = open_project
        self.name = name or server_name()
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self.listening = self._listen()

    def _listen(self) -> bool:
        # another TL Studio listens: this window is then not the one files go to (asked first: with
        # socket options set, Qt's listen() would silently take the name over)
        probe = QLocalSocket()
        probe.connectToServer(self.name)
        if probe.waitForConnected(300):
            probe.disconnectFromServer()
            return False
        if self._server.listen(self.name):
            return True
        QLocalServer.removeServer(self.name)  # a crashed TL Studio left its socket file behind
        return self._server.listen(self.name)

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)
            self._read(socket)  # what arrived before the connection above emits no readyRead again

    def _read(self, socket: QLocalSocket) -> None:
        if not socket.canReadLine():
            return
        try:
            path = str(json.loads(bytes(socket.readLine().data()))["open"])
        except (ValueError, KeyError, TypeError):
            socket.write(b"error\n")
            return
        socket.write(((OPENED if self._open(path) else BUSY) + "\n").encode())
        socket.flush()

    def close(self) -> None:
        """Stop listening (the window closes)."""
        self._server.close()
