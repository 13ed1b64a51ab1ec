"""Export panel: the selected run's SavedModel (and .keras) to a chosen folder, and the deployment
formats (TFLite with quantisation and labels inside, ONNX, OpenVINO, TF Serving) each verified in its own
runtime, side by side; Core ML and TF.js are listed greyed out with the reason they are not made here.

The run is the app state's selected run (chosen here or in Evaluate; by default the best finished run
by validation), never merely the latest."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.deploy.format_list import CHOICES, unavailable
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.headline import headline
from tlstudio.gui.state import AppState
from tlstudio.gui.worker import Task

NO_RUN_TEXT = "Train a model first; its run appears here."


def export_job(run_dir: Path, out_dir: Path):
    """Worker job: export and verify."""
    from tlstudio.core.deploy.export import export_run

    return export_run(run_dir, out_dir)


FORMAT_CHOICES = CHOICES  # (shown, format, quantisation), from the core: the CLI's list too


def formats_job(run_dir: Path, fmt: str, quantize: str, task: Task):
    """Worker job: one format or all, each verified in its runtime; a list of DeployResult. Reports
    (done, total, artefact) before each artefact; ``task.stop()`` cancels."""
    from tlstudio.core.deploy.export_set import export_all
    from tlstudio.core.deploy.formats import DeployError, DeployResult, export_format

    if fmt == "all":
        return export_all(
            run_dir, stop=task.stop_token, progress=lambda done, total, name: task.report((done, total, name))
        )
    try:
        task.report((0, 1, fmt if quantize == "float32" else f"{fmt}-{quantize}"))
        return [export_format(run_dir, fmt, quantize=quantize, stop=task.stop_token)]
    except DeployError as err:
        return [DeployResult(fmt, quantize, None, None, error=str(err))]


def results_html(results) -> str:
    """The formats as an HTML table (size, latency, agreement, accuracy change, folder)."""
    rows = []
    for r in results:
        v = r.verification
        if r.skipped:
            rows.append(
                f"<tr><td>{r.name}</td><td colspan=6 style='color:#a60'>skipped: {r.skipped}</td></tr>"
            )
            continue
        if v is None:
            rows.append(
                f"<tr><td>{r.name}</td><td colspan=6 style='color:#b00'>not written: {r.error}</td></tr>"
            )
            continue
        size = f"{v.size_bytes / 1e6:.2f} MB" if v.size_bytes >= 1e6 else f"{v.size_bytes / 1e3:.0f} KB"
        rows.append(
            f"<tr><td>{r.name}</td><td align=right>{size}</td><td align=right>{v.latency_ms_median:.2f}</td>"
            f"<td align=right>{v.throughput_images_per_second:,.0f}</td>"
            f"<td align=right>{v.agreement:.1%}</td>"
            f"<td align=right>{v.accuracy:.3f} ({v.accuracy_change:+.3f})</td>"
            f"<td><code>{r.folder}</code></td></tr>"
        )
    head = (
        "<tr><th>format</th><th>size</th><th>ms/image</th><th>images/s @32</th><th>agreement</th>"
        "<th>accuracy (change)</th><th>folder</th></tr>"
    )
    return (
        "<p><b>Each format was run by its own runtime in a fresh process</b> (LiteRT, onnxruntime, "
        "OpenVINO, TensorFlow.js, TensorFlow) on the run's test images and compared with the trained "
        "model; one that did not agree was not written. Each folder holds a sample client, "
        "<code>predict_&lt;format&gt;.py IMAGE</code> (TF.js: <code>index.html</code>).</p>"
        "<table cellspacing=4>" + head + "".join(rows) + "</table>"
    )


class ExportPanel(QWidget):
    """Shows the selected run and exports it."""

    def __init__(self, parent=None, state: AppState | None = None):
        super().__init__(parent)
        self.state = state or AppState()
        self.run_dir: Path | None = None
        self.task: Task | None = None
        self.run_choice = QComboBox()
        self.run_choice.setToolTip(
            "The run to export: the best finished run by validation unless you choose another "
            "(here or in Evaluate)"
        )
        self.run_choice.activated.connect(
            lambda i: self.state.select_run(self.run_choice.itemData(i)) if i >= 0 else None
        )
        self.summary = QLabel(NO_RUN_TEXT)
        self.summary.setWordWrap(True)
        self.button = QPushButton("Export to folder…")
        self.button.setShortcut("Ctrl+E")
        self.button.setToolTip(
            "SavedModel serving raw 0–255 RGB images, model.keras, labels.txt, metadata.json (Ctrl+E)"
        )
        self.button.setEnabled(False)
        self.button.clicked.connect(self._ask_folder)
        self.distill_button = QPushButton("Distil into a small model…")
        self.distill_button.setToolTip(
            "Train a small edge model (MobileNetV3Small, EfficientNet-Lite0) on this run's soft labels, "
            "on its own split, and compare the two (the same as `tlstudio distill`)"
        )
        self.distill_button.setEnabled(False)
        self.distill_button.clicked.connect(self.open_distill)
        self.format = QComboBox()
        for i, (text, fmt, _) in enumerate(FORMAT_CHOICES):
            self.format.addItem(text)
            if reason := unavailable(fmt):  # named, not made here: greyed out, the reason as its tip
                self.format.model().item(i).setEnabled(False)
                self.format.setItemData(i, reason, Qt.ItemDataRole.ToolTipRole)
        self.format.setToolTip(
            "Deployment formats land in RUN/export/<format>/, each checked by its own runtime "
            "(the same as `tlstudio export`)"
        )
        self.format_button = QPushButton("Export format")
        self.format_button.setEnabled(False)
        self.format_button.clicked.connect(lambda: self.export_formats(self.format.currentIndex()))
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip(
            "Stop the formats: the one under way is not put in place, the rest are not tried"
        )
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(lambda: self.task is not None and self.task.stop())
        formats = QHBoxLayout()
        formats.addWidget(QLabel("Deploy as"))
        formats.addWidget(self.format, 1)
        formats.addWidget(self.format_button)
        formats.addWidget(self.cancel)
        self.result = QTextBrowser()
        self.result.setPlaceholderText("The verification result appears here after an export.")
        self.card = QTextBrowser()  # the selected run's model card (RUN/export/README.md or MODEL_CARD.md)
        self.card.setOpenLinks(False)
        self.views = QTabWidget()
        self.views.addTab(self.result, "Result")
        self.views.addTab(self.card, "Model card")
        layout = QVBoxLayout(self)
        chooser = QHBoxLayout()
        chooser.addWidget(QLabel("Run"))
        chooser.addWidget(self.run_choice, 1)
        layout.addLayout(chooser)
        layout.addWidget(self.summary)
        layout.addWidget(self.button)
        layout.addWidget(self.distill_button)
        layout.addLayout(formats)
        layout.addWidget(self.views, 1)

        self.follow(self.state)

    def follow(self, state: AppState) -> None:
        """Export ``state``'s selected run from now on."""
        self.state = state
        for aspect in ("project", "runs", "selected_run"):
            state.subscribe(aspect, self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """List the runs with a model, and show the selected one (nothing: nothing to export)."""
        records = [r for r in self.state.runs if (r.run_dir / files.MODEL).is_file()]
        self.run_choice.clear()
        for r in records:
            self.run_choice.addItem(f"{r.name} — {r.status}, {headline(r.metrics)}", str(r.run_dir))
        record = self.state.selected_record()
        if record is None:
            self.run_dir = None
            self.summary.setText(NO_RUN_TEXT)
            for button in (self.button, self.format_button, self.distill_button):
                button.setEnabled(False)
            if self.task is None or not self.task.is_running():
                self.result.clear()
            self.card.clear()
            return
        self.run_choice.setCurrentIndex(self.run_choice.findData(str(record.run_dir)))
        if record.run_dir != self.run_dir:
            self.show_run(record.run_dir, record.status, record.metrics)

    def show_run(self, run_dir: Path, status: str, metrics: dict[str, float]) -> None:
        """A run to export."""
        self.run_dir = Path(run_dir)
        usable = (self.run_dir / files.MODEL).is_file()
        best = self.state.default_run() == self.run_dir.absolute()
        self.summary.setText(
            f"Exporting run <b>{self.run_dir.name}</b> ({'the best by validation' if best else 'chosen'}"
            f"; folder {self.run_dir}) — {status}, {headline(metrics)}."
            + ("" if usable else " It has no model to export.")
        )
        self.button.setEnabled(usable)
        self.format_button.setEnabled(usable)
        self.distill_button.setEnabled(usable and (self.run_dir / files.SAVED_MODEL).is_dir())
        self.show_card()
        if usable:
            self.result.setHtml(
                f"The run's own export is in <code>{self.run_dir / 'saved_model'}</code> "
                "(verified when it was written). Export again to put it elsewhere."
            )

    def open_distill(self):
        """The "Distil into a small model…" dialog for the shown run; a student made joins the runs."""
        from tlstudio.gui.distill_dialog import DistillDialog

        if self.run_dir is None:
            return None
        dialog = DistillDialog(self.run_dir, self, on_student=self.state.adopt_run)
        dialog.show()
        return dialog

    def show_card(self) -> None:
        """The shown run's model card: the export set's when there is one, else the run's own, else
        made now from its folder (a run from before cards were written)."""
        from tlstudio.core.deploy.model_card import card_path, model_card

        path = card_path(self.run_dir)
        try:
            text = path.read_text(encoding="utf-8") if path is not None else model_card(self.run_dir)
        except OSError as err:
            text = f"The model card could not be read: {err}"
        self.card.setMarkdown(text)

    def export_to(self, folder: str) -> None:
        """Export the shown run into ``folder`` in a worker thread."""
        if self.run_dir is None or (self.task is not None and self.task.is_running()):
            return
        self.button.setEnabled(False)
        self.result.setHtml(f"Exporting to <code>{folder}</code> and reloading it to check…")
        run_dir = self.run_dir  # (the selection may change while it exports)
        self.task = Task(lambda: export_job(run_dir, Path(folder)))
        self.task.done.connect(self._done)
        self.task.failed.connect(self._failed)
        self.task.start()

    def export_formats(self, choice: int) -> None:
        """Export the format at ``choice`` of FORMAT_CHOICES in a worker thread."""
        if self.run_dir is None or (self.task is not None and self.task.is_running()):
            return
        text, fmt, quantize = FORMAT_CHOICES[choice]
        self.format_button.setEnabled(False)
        self.cancel.setEnabled(True)
        self.result.setHtml(f"Converting ({text}) and checking it in its own runtime…")
        run_dir = self.run_dir
        self.task = Task(lambda task: formats_job(run_dir, fmt, quantize, task), with_report=True)
        self.task.event.connect(self._formats_progress)
        self.task.done.connect(self._formats_done)
        self.task.failed.connect(self._failed)
        self.task.start()

    def _formats_progress(self, step) -> None:
        done, total, name = step
        self.result.setHtml(
            f"Converting <b>{name}</b> ({done + 1} of {total}) and checking it in its own runtime… "
            "<i>Cancel</i> stops it, and nothing half-done is put in place."
        )

    def _formats_done(self, results) -> None:
        self.format_button.setEnabled(True)
        self.cancel.setEnabled(False)
        self.result.setHtml(results_html(results))
        self.show_card()  # an export set lands with its own card

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
        self.cancel.setEnabled(False)
        self.format_button.setEnabled(self.run_dir is not None)
        self.result.setHtml(
            f"<p style='color:#b00'><b>Export failed</b>; nothing was written.</p><pre>{message}</pre>"
        )
