"""Start-up probes for ``benchmarks/bench_startup.py`` (set ``TLSTUDIO_STARTUP_PROBE``).

``paint``: print ``window-painted`` once the main window has painted, then quit. ``stall``: after
that, fire a 5 ms timer until TensorFlow is loaded and print the worst and 99th-percentile delay
of the event loop (``stall worst=… p99=…``), then quit.
"""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QTimer

PROBE_MS = 5


class StartupProbe(QObject):
    """Watches a window's first paint, then optionally the event loop while TensorFlow loads."""

    def __init__(self, window, mode: str):
        super().__init__(window)
        self.window, self.mode = window, mode
        self.delays: list[float] = []
        window.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Paint and watched is self.window:
            self.window.removeEventFilter(self)
            QTimer.singleShot(0, self._painted)
        return False

    def _painted(self) -> None:
        print("window-painted", flush=True)
        if self.mode != "stall":
            self.window.close()
            return
        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = self.clock.elapsed()
        self.timer = QTimer(self, interval=PROBE_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.delays.append(max(0.0, now - self.last - PROBE_MS))
        self.last = now
        status = self.window.tf_status.text()
        if "ready" in status or "failed" in status:  # the loader's result has been shown
            self.timer.stop()
            ordered = sorted(self.delays)
            p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            loaded = "ready" in status
            print(
                f"stall worst={ordered[-1]:.0f} p99={p99:.0f} ticks={len(ordered)} "
                f"tensorflow={'loaded' if loaded else 'FAILED: ' + status}",
                flush=True,
            )
            self.window.close()
