"""Terminal progress for training runs with ``rich``: a live bar per epoch (and for the steps after
the last epoch), a line per epoch, a table of the final scores.

On a terminal the bar redraws in place; into a pipe or a file, only the lines are written.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tlstudio.core import events as ev
from tlstudio.core.results.headline import headline
from tlstudio.report_text import counted

FINAL = ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "test_macro_f1")


class ProgressPrinter:
    """Prints training events for a person following along in a terminal."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None):
        stream = stream or sys.stderr
        live = stream.isatty() if live is None else live
        self.console = Console(file=stream, force_terminal=live, soft_wrap=True, highlight=False)
        self.live = live
        self._phase_end = 0
        self._bar: Progress | None = None
        self._task = None
        self._finishing: str | None = None

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def _print(self, text: str = "") -> None:
        self.console.print(text, markup=False)

    def _start_bar(self, description: str, total: int | None) -> None:
        self._stop_bar()
        if not self.live:
            return
        self._bar = Progress(
            TextColumn("  {task.description}", markup=False),  # a step's text may name files
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, info="")

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _on_RunStarted(self, e: ev.RunStarted) -> None:
        self._print(
            f"Training {e.backbone} on {e.device}: {counted(len(e.classes), 'class')}, "
            f"{e.train_images} train / "
            f"{e.val_images} val / {e.test_images} test images at {e.image_size}×{e.image_size}"
        )
        self._print(f"Run folder: {e.run_dir}")

    def _on_PhaseStarted(self, e: ev.PhaseStarted) -> None:
        self._stop_bar()
        self._phase_end = e.first_epoch + e.epochs
        rate = f"learning rate {e.learning_rate:g}; " if e.learning_rate else ""  # (a probe has none)
        self._print(
            f"\nPhase '{e.phase}': {e.description}; {rate}"
            f"{e.trainable_params:,} trainable / {e.frozen_params:,} frozen parameters; "
            + ("cached backbone features (computed once)" if e.uses_feature_cache else "full pipeline")
        )

    def _on_BatchEnded(self, e: ev.BatchEnded) -> None:
        if not self.live:  # into a pipe: the epoch's line is enough
            return
        description = f"epoch {e.epoch + 1}/{self._phase_end}"
        if self._bar is None or self._bar.tasks[0].description != description:
            self._start_bar(description, e.steps)
        if self._bar is not None:
            acc = f"  acc {e.accuracy:.3f}" if e.accuracy is not None else ""
            info = f"loss {e.loss:.4f}{acc}  {e.images_per_second:,.0f} img/s"
            self._bar.update(self._task, completed=e.step, total=e.steps, info=info)

    def _on_EpochEnded(self, e: ev.EpochEnded) -> None:
        self._stop_bar()
        m = e.metrics
        parts = [f"loss {m.get('loss', float('nan')):.4f}"]
        for key, name in (("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")):
            if key in m:
                parts.append(f"{name} {m[key]:.4f}")
        self._print(
            f"  epoch {e.epoch + 1}/{self._phase_end}  "
            + "  ".join(parts)
            + (f"  lr {e.learning_rate:.2g}" if e.phase != "probe" else "")
            + f"  {e.seconds:.1f}s"
        )

    def _on_Working(self, e: ev.Working) -> None:
        if self._bar is None or self._bar.tasks[0].description != e.step:
            self._start_bar(e.step, e.total or None)
        if self._bar is not None and e.total:
            self._bar.update(self._task, completed=e.done, total=e.total)

    def _on_Finishing(self, e: ev.Finishing) -> None:
        if e.step != self._finishing:
            self._finishing = e.step
            self._stop_bar()
            self._print(f"{e.step[0].upper()}{e.step[1:]}…")
            self._start_bar(e.step, e.total or None)
        if self._bar is not None and e.total:
            self._bar.update(self._task, completed=e.done, total=e.total, info="images")

    def _on_CheckpointSaved(self, e: ev.CheckpointSaved) -> None:
        self._print(f"    best so far ({e.monitor} {e.value:.4f}): checkpoint saved")

    def _on_BatchSizeReduced(self, e: ev.BatchSizeReduced) -> None:
        self._stop_bar()
        self._print(f"\nOut of memory at batch size {e.old} ({e.message}): starting again at {e.new}")

    def _on_RecipeChanged(self, e: ev.RecipeChanged) -> None:
        self._print(f"\nNote: {e.reason}")

    def _on_Interpolated(self, e: ev.Interpolated) -> None:
        pairs = "  ".join(f"α {a:g}: {v:.4f}" for a, v in zip(e.alphas, e.val_losses, strict=True))
        self._print(
            f"\nWiSE-FT (val_loss by α, 0 = probe, 1 = fine-tuned): {pairs}\n  chosen α = {e.chosen:g}"
        )

    def _on_Souped(self, e: ev.Souped) -> None:
        if e.skipped:
            self._print(f"\nCheckpoint soup skipped: {e.skipped}")
            return
        self._print(
            f"\nCheckpoint soup: epochs {', '.join(str(i + 1) for i in e.ingredients)} of the {e.kept} best "
            f"averaged; val_loss {e.best_val_loss:.4f} → {e.val_loss:.4f}, "
            f"val_accuracy {e.best_val_accuracy:.3f} → {e.val_accuracy:.3f}"
        )

    def _on_FilesSkipped(self, e: ev.FilesSkipped) -> None:
        self._stop_bar()
        self._print(f"Skipped {len(e.files)} file(s):")
        for path, reason in e.files[:20]:
            self._print(f"  - {path}: {reason}")
        if len(e.files) > 20:
            self._print(f"  … and {len(e.files) - 20} more (see `tlstudio inspect`)")

    def _on_RunFinished(self, e: ev.RunFinished) -> None:
        self._stop_bar()
        self._print(f"\nRun {e.status}." + (f" {e.message}" if e.message else ""))
        m = e.metrics
        shown = [key for key in FINAL if key in m]
        if shown:
            table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
            table.add_column("metric")
            table.add_column("value", justify="right")
            for key in shown:
                table.add_row(key, f"{m[key]:.4f}")
            self.console.print(table)
        if "test_accuracy" in m:
            small = m.get("test_images", 100) < 100
            self._print(headline(m) + (": a small test split, read it as a range" if small else ""))
        if e.export_dir:
            self._print(
                f"Exported: {e.export_dir}/saved_model (verified by reloading), model.keras, labels.txt"
            )

    def _on_RunFailed(self, e: ev.RunFailed) -> None:
        self._stop_bar()
        self._print(f"\nRun failed: {e.error}\n  What to do: {e.hint}")
        if e.checkpoint:
            self._print(f"  The best checkpoint so far is kept: {e.checkpoint}")
