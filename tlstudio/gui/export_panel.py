"""Export panel: write a finished run's SavedModel (and .keras) to a chosen folder, verified."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from tlstudio.gui.worker import Task


def export_job(run_dir: Path, out_dir: Path):
    """Worker job: export and verify."""
    from tlstudio.core.export import export_run

    return export_run(run_dir, out_dir)


class ExportPanel(QWidget):
    """Shows the last run and exports it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.task: Task | None = None
        self.summary = QLabel("Train a model first; its run appears here.")
        self.summary.setWordWrap(True)
        self.button = QPushButton("Export to folder…")
        self.button.setShortcut("Ctrl+E")
        self.button.setToolTip(
            "SavedModel serving raw 0–255 RGB images, model.keras, labels.txt, metadata.json (Ctrl+E)"
        )
        self.button.setEnabled(False)
        self.button.clicked.connect(self._ask_folder)
        self.result = QTextBrowser()
        self.result.setPlaceholderText("The verification result appears here after an export.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.button)
        layout.addWidget(self.result, 1)

    def show_run(self, run_dir: Path, status: str, metrics: dict[str, float]) -> None:
        """A run to export."""
        self.run_dir = Path(run_dir)
        usable = (self.run_dir / "model.keras").is_file()
        acc = (
            f"test accuracy {metrics['test_accuracy']:.3f}" if "test_accuracy" in metrics else "no test split"
        )
        self.summary.setText(
            f"Last run: <b>{self.run_dir}</b> — {status}, {acc}."
            + ("" if usable else " It has no model to export.")
        )
        self.button.setEnabled(usable)
        if usable:
            self.result.setHtml(
                f"The run's own export is in <code>{self.run_dir / 'saved_model'}</code> "
                "(verified when it was written). Export again to put it elsewhere."
            )

    def export_to(self, folder: str) -> None:
        """Export the shown run into ``folder`` in a worker thread."""
        if self.run_dir is None or (self.task is not None and self.task.is_running()):
            return
        self.button.setEnabled(False)
        self.result.setHtml(f"Exporting to <code>{folder}</code> and reloading it to check…")
        self.task = Task(lambda: export_job(self.run_dir, Path(folder)))
        self.task.done.connect(self._done)
        self.task.failed.connect(self._failed)
        self.task.start()

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into folder")
        if folder:
            self.export_to(folder)

    def _done(self, result) -> None:
        self.button.setEnabled(True)
        self.result.setHtml(
            f"<p><b>Exported and verified.</b> The SavedModel at <code>{result.saved_model}</code> was "
            "reloaded with plain <code>tf.saved_model.load</code>; every entry point agreed with the "
            "trained model "
            f"(largest difference {result.max_abs_difference:.1e}).</p>"
            "<p>Use it: <code>tf.saved_model.load(path).serve(images)</code> with RGB pixels 0–255, any size."
            "</p>"
        )

    def _failed(self, message: str) -> None:
        self.button.setEnabled(True)
        self.result.setHtml(
            f"<p style='color:#b00'><b>Export failed</b>; nothing was written.</p><pre>{message}</pre>"
        )
