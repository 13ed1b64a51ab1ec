"""Try it's verdict text, and Grad-CAM per label on a multi-label run: the map shows the most probable
label at first; click another label under the verdict to see where the model sees that one (computed in
a worker by ``core.results.try_it.Tryout.heat_for``)."""

from __future__ import annotations

from html import escape
from urllib.parse import quote, unquote

from PySide6.QtCore import QObject, Qt

from tlstudio.gui.worker import Task, reason

LINK = "label:"
CAM_MARK = "<br>Grad-CAM for: "


def cam_line(choices, shown: str) -> str:
    """The line naming the label the map shows (bold), each other label a link to its own map."""
    links = (
        f"<b>{escape(label)}</b>" if label == shown else f'<a href="{LINK}{quote(label)}">{escape(label)}</a>'
        for label in choices
    )
    return CAM_MARK + " · ".join(links)


def verdict_text(verdict, words: str) -> str:
    """The confidence in words (bold), then the top classes with their probabilities (and, multi-label,
    the label Grad-CAM explains among links to the others)."""
    tops = "<br>".join(f"{escape(label)}: {p:.3f}" for label, p in verdict.top)
    cam = cam_line(verdict.cam_choices, verdict.cam_label) if verdict.cam_label else ""
    return f"<b>{words}</b><br>{tops}{cam}"


class LabelCam(QObject):
    """Makes the label links of a ``TryPanel``'s verdict show that label's Grad-CAM."""

    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.panel = panel
        self.task: Task | None = None
        panel.verdict.linkActivated.connect(self.explain)

    def explain(self, link: str) -> None:
        """Grad-CAM of the selected image for the label of ``link`` (``label:NAME``), in a worker."""
        from tlstudio.gui.try_panel import OVERLAY

        panel = self.panel
        item, tryout = panel.images.currentItem(), panel.tryout
        if not link.startswith(LINK) or item is None or tryout is None or panel.showing_frame is not None:
            return
        if panel.task is not None and panel.task.is_running():
            panel.verdict.setText(panel.verdict.text() + "<br><i>Still trying images: click again after.</i>")
            return
        if self.task is not None:
            self.task.retire()  # an earlier click's map is no longer wanted
        label, path = unquote(link[len(LINK) :]), item.data(Qt.ItemDataRole.UserRole)

        def job():
            from tlstudio.core.results.try_it import overlay_for

            return overlay_for(path, tryout.heat_for(path, label), OVERLAY)

        self.task = Task(job)
        self.task.done.connect(lambda picture: self._show(path, label, picture))
        self.task.failed.connect(lambda message: panel.verdict.setText(f"Grad-CAM failed: {reason(message)}"))
        self.task.start()

    def _show(self, path: str, label: str, picture) -> None:
        from tlstudio.gui.try_panel import to_pixmap

        panel = self.panel
        panel.pictures[path] = to_pixmap(picture)
        words = panel.words.get(path, "")
        if CAM_MARK in words:
            panel.words[path] = words.split(CAM_MARK)[0] + cam_line(panel.tryout.labels, label)
        item = panel.images.currentItem()
        if item is not None and item.data(Qt.ItemDataRole.UserRole) == path:
            panel._show_current()
