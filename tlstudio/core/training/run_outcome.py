"""How a run ends: evaluated, calibrated, reported and exported — or stopped, failed, or failed to learn.

Each function takes the run (``run_state.RunState``) whose run is ending.
"""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tlstudio.core import atomic
from tlstudio.core import events as ev
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import Manifest
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import wilson_interval, within_chance
from tlstudio.core.training.failures import hint_for, message_for, need_free_space, weights_bytes

if TYPE_CHECKING:
    import keras

    from tlstudio.core.training.run_state import RunState


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # "completed", "stopped", "failed" or "failed_to_learn"
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    export_dir: Path | None = None
    error: str | None = None
    model: keras.Model | None = None
    primary: bool = True  # False: nothing to record (another worker of a cluster, or no start)


def complete(session: RunState, model, started: float, status: str) -> RunResult:
    manifest, size, test = session.manifest, session.image_size, session.manifest.subset("test")
    metrics: dict[str, float] = {}
    if session.best_epoch is not None:
        best = session.history["epochs"][session.best_epoch]
        metrics.update({k: v for k, v in best.items() if k not in ("phase", "epoch", "seconds")})
        metrics["best_epoch"] = session.best_epoch
    metrics.update(session.final_scores)
    multi = manifest.multi_label
    verdict = learning_verdict(metrics, session.manifest, session.pos_weight)
    if verdict and status == "completed":
        status = "failed_to_learn"
        session.export = False  # a model no better than chance is not worth serving
    if not session.primary:  # the chief evaluates, records and exports
        session.emit(ev.RunFinished(status, str(session.run_dir), metrics, None))
        return RunResult(status, session.run_dir, metrics, model=model, primary=False)
    if model.dtype_policy.name == "mixed_float16":  # trained in float16: served in float32
        from tlstudio.core.deploy.restore import float32_twin

        session.emit(ev.Finishing("copying the weights into a float32 model for evaluation and export"))
        model = float32_twin(model, session.settings, len(manifest.classes), size, multi_label=multi)
        session.model = model
    if multi:  # per-label thresholds, tuned on validation (after Platt scaling per label, if asked)
        from tlstudio.core.training.multilabel_outcome import tune_on_validation

        if session.settings.calibrate and manifest.subset("val"):
            from tlstudio.core.training.multilabel_calibration import calibrate_multilabel

            metrics.update(calibrate_multilabel(session, model))
        session.thresholds = tune_on_validation(session, model)
    elif session.settings.calibrate and manifest.subset("val"):
        metrics.update(calibrate(session, model))
    if test and session.score_test and multi:
        from tlstudio.core.training.multilabel_outcome import evaluate_test_multilabel

        metrics.update(evaluate_test_multilabel(session, model, test))
    elif test and session.score_test:
        metrics.update(evaluate_test(session, model, test))
    if session.load_errors.items():
        session.emit(ev.FilesSkipped(session.load_errors.items()))
    export_dir = None
    if session.export:
        from tlstudio.core.deploy.export import export_model

        # the SavedModel and model.keras each hold the weights once, plus the SavedModel's graph
        # (measured: 0.16 MB for a tiny CNN, under 4 MB for EfficientNetB0)
        need_free_space(
            session.run_dir,
            weights_bytes(model) * 2 + 4 * 2**20,
            "the export",
            f"The trained weights are kept in {session.checkpoint.parent}: free some space, then "
            f"`tlstudio export {session.run_dir}` exports them (a resume would have nothing left to train)",
        )
        session.emit(ev.Finishing("exporting the SavedModel (and checking it reloads)"))
        result = export_model(
            model,
            session.run_dir,
            labels=manifest.classes,
            image_size=size,
            metadata=metadata(session, manifest, metrics, size),
            samples=samples(session, manifest, size),
        )
        export_dir = result.export_dir
    atomic.write_json(session.run_dir / files.METRICS, metrics)
    last_epoch = max(len(session.history["epochs"]) - 1, 0)  # the run as an HParams session (TensorBoard)
    session.scalars.write_outcome(
        session.run_dir / files.TENSORBOARD, session.settings.to_dict(), metrics, last_epoch
    )
    session.scalars.close()
    session.write_status(status, started, manifest, size, metrics=metrics, message=verdict or "")
    from tlstudio.core.deploy.model_card import write_run_card

    write_run_card(session.run_dir)  # RUN/MODEL_CARD.md, from the files written by now
    session.emit(
        ev.RunFinished(
            status, str(session.run_dir), metrics, str(export_dir) if export_dir else None, verdict or ""
        )
    )
    return RunResult(status, session.run_dir, metrics, export_dir, model=model)


def finish_stopped(session: RunState, started: float) -> RunResult:
    if not session.checkpoint.is_file():
        message = "stopped before the first epoch finished: no weights worth keeping"
        session.write_status("stopped", started, session.manifest, session.image_size, message=message)
        session.emit(ev.RunFinished("stopped", str(session.run_dir), message=message))
        return RunResult("stopped", session.run_dir, error=message)
    session.emit(ev.Finishing("stopped: restoring the best weights so far"))  # said at once, not after them
    session.model.load_weights(session.checkpoint)
    return complete(session, session.model, started, "stopped")


def refused_before_claim(session: RunState) -> RunResult | None:
    """A failed result when the run cannot use its backbone: ImageNet weights neither cached nor
    downloadable, or a SavedModel backbone whose function reaches outside the model (files, Python).
    Checked before the run folder is claimed, so no failed run is left behind and nothing of the
    backbone runs; None when all is in place."""
    from tlstudio.core.backbone.savedmodel import SavedModelLayer, resolve_hub_handle
    from tlstudio.core.backbone.sources import BackboneError, is_hub_handle
    from tlstudio.core.backbone.weights import ensure_imagenet_weights

    s = session.settings
    try:
        ensure_imagenet_weights(s.backbone, s.weights, s.image_size)
        folder = Path(s.backbone).expanduser()
        if is_hub_handle(s.backbone) or (folder / "saved_model.pb").is_file():  # a SavedModel:
            # loaded and its function read (not run), so an unsafe one is refused here
            SavedModelLayer(str(resolve_hub_handle(s.backbone) if is_hub_handle(s.backbone) else folder))
    except BackboneError as err:
        session.emit(ev.RunFailed(str(session.run_dir), str(err), hint_for(err), None))
        return RunResult("failed", session.run_dir, error=str(err), primary=False)
    return None


def finish_failed(session: RunState, err: Exception, started: float) -> RunResult:
    message = message_for(err)
    hint = hint_for(err)
    checkpoint = str(session.checkpoint) if session.checkpoint.is_file() else None
    with contextlib.suppress(OSError):  # a full disk may refuse even this
        (session.run_dir / "error.txt").write_text(traceback.format_exc())
    with contextlib.suppress(OSError):
        session.write_status("failed", started, None, None, message=message)
    session.emit(ev.RunFailed(str(session.run_dir), message, hint, checkpoint))
    return RunResult("failed", session.run_dir, error=message, primary=session.primary)


def evaluate_entries(session: RunState, model, entries, step: str = "evaluating on the test split"):
    from tlstudio.core.results.evaluation import evaluate_items

    def progress(done: int, total: int) -> None:
        session.emit(ev.Finishing(step, done, total))

    progress(0, len(entries))  # before the first batch, which traces the model (seconds on a CPU)

    def predict(x):
        if session.strategy is not None:  # predict_on_batch would split the batch over the replicas
            return np.asarray(model(x.astype(np.float32), training=False))
        return model.predict_on_batch(x.astype(np.float32))

    evaluation = evaluate_items(
        predict,
        session.manifest.classes,
        session.image_size,
        session.data_dir,
        [(e.path, e.label) for e in entries],
        progress=progress,
    )
    for skipped in evaluation.skipped:  # dropped from the scores: named with the run's other dropped files
        session.load_errors.add(skipped["path"], f"{skipped['reason']} ({step})")
    return evaluation


def calibrate(session: RunState, model) -> dict[str, float]:
    """Temperature scaling on the validation split, baked into the output layer: softmax(z / T)
    is the same as dividing the last Dense layer's kernel and bias by T."""
    from tlstudio.core.results.metrics import apply_temperature, fit_temperature, log_loss, reliability

    val = evaluate_entries(
        session, model, session.manifest.subset("val"), "calibrating on the validation split"
    )
    t = fit_temperature(val.y_true, val.probs)
    layer = model.get_layer("predictions")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / t, bias / t])
    calibrated = apply_temperature(val.probs, t)
    return {
        "temperature": t,
        "val_log_loss_before_calibration": log_loss(val.y_true, val.probs),
        "val_log_loss_calibrated": log_loss(val.y_true, calibrated),
        "val_ece_before_calibration": reliability(val.y_true, val.probs)["ece"],
        "val_ece_calibrated": reliability(val.y_true, calibrated)["ece"],
    }


def evaluate_test(session: RunState, model, test) -> dict[str, float]:
    """Every metric on the test split: evaluation.json and report.html in the run folder."""
    from tlstudio.core.results.gradcam import GradCam, GradCamError
    from tlstudio.core.results.report import write_report

    evaluation = evaluate_entries(session, model, test)
    atomic.write_json(session.run_dir / files.EVALUATION, evaluation.to_dict(with_predictions=True))
    try:
        cam = GradCam(model)
    except GradCamError:
        cam = None
    session.emit(ev.Finishing("writing the report"))
    write_report(
        session.run_dir / files.REPORT,
        evaluation,
        session.data_dir,
        title=f"TL Studio run {session.run_dir.name} — {session.settings.backbone}",
        run_dir=session.run_dir,
        gradcam=cam,
    )
    m = evaluation.metrics
    n = len(evaluation.y_true)
    low, high = wilson_interval(round(m["accuracy"] * n), n)
    return {
        "test_images": n,
        "test_accuracy_low": low,  # 95% Wilson interval
        "test_accuracy_high": high,
        "test_accuracy": m["accuracy"],
        "test_loss": m["loss"],
        "test_macro_f1": m["averages"]["macro"]["f1"],
        "test_balanced_accuracy": m["balanced_accuracy"],
        **{  # 95% percentile-bootstrap intervals over the test images
            f"test_{key}_{end}": value
            for key in ("balanced_accuracy", "macro_f1")
            if key in m["intervals"]
            for end, value in zip(("low", "high"), m["intervals"][key], strict=True)
        },
        "test_ece": m["ece"],
        **({"test_auc": m["auc"]["macro"]} if m["auc"]["macro"] is not None else {}),
    }


def metadata(
    session: RunState, manifest: Manifest, metrics: dict[str, float], size: int
) -> dict[str, object]:
    return {
        "classes": manifest.classes,
        "image_size": size,
        "input": "RGB pixels 0-255, float32 (serving_default) or uint8 (serving_uint8), any size "
        "(resized inside)",
        "backbone": session.settings.backbone,
        "settings": session.settings.to_dict(),
        "metrics": metrics,
        "manifest_fingerprint": manifest.fingerprint(),
        "task": manifest.task,
    } | ({"thresholds": session.thresholds} if manifest.multi_label else {})


def samples(session: RunState, manifest: Manifest, size: int) -> np.ndarray:
    from tlstudio.core.data.pipeline import load_for_model

    arrays = []
    for entry in (manifest.subset("test") or manifest.subset("val") or list(manifest.entries))[:8]:
        try:
            arrays.append(load_for_model(in_folder(session.data_dir, entry.path), size))
        except Exception:  # a sample that fails to load is simply not used for the check
            continue
    if not arrays:
        arrays = [np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)]
    return np.stack(arrays)


def learning_verdict(
    metrics: dict[str, float], manifest: Manifest, pos_weight: np.ndarray | None = None
) -> str | None:
    """Why a run did not learn, or None: the final accuracy on the validation split (the training
    split when there is none, or fewer than 10 validation images) is within noise of always
    answering the largest class (multi-label: ``multilabel_outcome.multilabel_verdict``)."""
    if manifest.multi_label:
        from tlstudio.core.training.multilabel_outcome import multilabel_verdict

        return multilabel_verdict(metrics, manifest, pos_weight)
    val = manifest.subset("val")
    use_val = len(val) >= 10 and "val_accuracy" in metrics
    entries = val if use_val else manifest.subset("train")
    accuracy = metrics.get("val_accuracy" if use_val else "accuracy")
    if accuracy is None:
        return None
    counts = [sum(1 for e in entries if e.label == c) for c in manifest.classes]
    if not within_chance(accuracy, len(entries), counts):
        return None
    split = "validation" if use_val else "training"
    return (
        f"the model did not learn: {split} accuracy {accuracy:.2f} is within noise of always answering the "
        f"largest class ({max(counts) / max(sum(counts), 1):.2f}). Try: pretrained weights instead of none, "
        "more epochs, a higher --learning-rate, more images per class, or check the labels. "
        "Nothing was exported."
    )
