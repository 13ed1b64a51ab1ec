"""Terminal progress for training runs: a per-epoch bar with ETA, then a line per epoch."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tlstudio.core import events as ev

_BAR = 24


class ProgressPrinter:
    """Prints training events for a person following along in a terminal."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._phase_end = 0
        self._epoch_start = time.perf_counter()
        self._shown_epoch = -1

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def _print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def _on_RunStarted(self, e: ev.RunStarted) -> None:
        self._print(
            f"Training {e.backbone} on {e.device}: {len(e.classes)} classes, {e.train_images} train / "
            f"{e.val_images} val / {e.test_images} test images at {e.image_size}×{e.image_size}"
        )
        self._print(f"Run folder: {e.run_dir}")

    def _on_PhaseStarted(self, e: ev.PhaseStarted) -> None:
        self._phase_end = e.first_epoch + e.epochs
        self._print(
            f"\nPhase '{e.phase}': {e.description}; learning rate {e.learning_rate:g}; "
            f"{e.trainable_params:,} trainable / {e.frozen_params:,} frozen parameters; "
            + ("cached backbone features (computed once)" if e.uses_feature_cache else "full pipeline")
        )

    def _on_BatchEnded(self, e: ev.BatchEnded) -> None:
        if e.epoch != self._shown_epoch:
            self._shown_epoch = e.epoch
            self._epoch_start = time.perf_counter()
        if not self.live:
            return
        done = e.step / max(e.steps, 1)
        elapsed = time.perf_counter() - self._epoch_start
        eta = elapsed / done - elapsed if done else 0.0
        bar = "#" * int(_BAR * done) + "-" * (_BAR - int(_BAR * done))
        acc = f"  acc {e.accuracy:.3f}" if e.accuracy is not None else ""
        self.stream.write(
            f"\r  epoch {e.epoch + 1}/{self._phase_end} [{bar}] {e.step}/{e.steps}  "
            f"loss {e.loss:.4f}{acc}  {e.images_per_second:,.0f} img/s  ETA {_clock(eta)} "
        )
        self.stream.flush()

    def _on_EpochEnded(self, e: ev.EpochEnded) -> None:
        if self.live:
            self.stream.write("\r" + " " * 100 + "\r")
        m = e.metrics
        parts = [f"loss {m.get('loss', float('nan')):.4f}"]
        for key, name in (("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")):
            if key in m:
                parts.append(f"{name} {m[key]:.4f}")
        self._print(
            f"  epoch {e.epoch + 1}/{self._phase_end}  "
            + "  ".join(parts)
            + f"  lr {e.learning_rate:.2g}  {e.seconds:.1f}s"
        )

    def _on_CheckpointSaved(self, e: ev.CheckpointSaved) -> None:
        self._print(f"    best so far ({e.monitor} {e.value:.4f}): checkpoint saved")

    def _on_RecipeChanged(self, e: ev.RecipeChanged) -> None:
        self._print(f"\nNote: {e.reason}")

    def _on_Interpolated(self, e: ev.Interpolated) -> None:
        pairs = "  ".join(f"α {a:g}: {v:.4f}" for a, v in zip(e.alphas, e.val_losses, strict=True))
        self._print(
            f"\nWiSE-FT (val_loss by α, 0 = probe, 1 = fine-tuned): {pairs}\n  chosen α = {e.chosen:g}"
        )

    def _on_FilesSkipped(self, e: ev.FilesSkipped) -> None:
        self._print(f"Skipped {len(e.files)} file(s):")
        for path, reason in e.files[:20]:
            self._print(f"  - {path}: {reason}")
        if len(e.files) > 20:
            self._print(f"  … and {len(e.files) - 20} more (see `tlstudio inspect`)")

    def _on_RunFinished(self, e: ev.RunFinished) -> None:
        self._print(f"\nRun {e.status}." + (f" {e.message}" if e.message else ""))
        m = e.metrics
        for key in ("val_accuracy", "val_loss", "test_accuracy", "test_loss"):
            if key in m:
                extra = ""
                if key == "test_accuracy" and "test_accuracy_low" in m:
                    extra = f"  (95% interval {m['test_accuracy_low']:.2f}–{m['test_accuracy_high']:.2f}"
                    extra += f" on {int(m['test_images'])} images"
                    extra += ": a small test split, read it as a range)" if m["test_images"] < 100 else ")"
                self._print(f"  {key:<14} {m[key]:.4f}{extra}")
        if e.export_dir:
            self._print(
                f"Exported: {e.export_dir}/saved_model (verified by reloading), model.keras, labels.txt"
            )

    def _on_RunFailed(self, e: ev.RunFailed) -> None:
        self._print(f"\nRun failed: {e.error}\n  What to do: {e.hint}")
        if e.checkpoint:
            self._print(f"  The best checkpoint so far is kept: {e.checkpoint}")


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )
