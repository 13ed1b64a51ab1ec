"""How a multi-label run ends: whether it learned, per-label thresholds tuned on validation, then the
test split's scores."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tlstudio.core import atomic
from tlstudio.core import events as ev
from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import MULTI_LABEL_THRESHOLD

if TYPE_CHECKING:
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.results.multilabel_evaluation import MultiLabelEvaluation
    from tlstudio.core.training.run_state import RunState


def evaluate_multilabel_entries(
    session: RunState, model, entries, thresholds: list[float], step: str
) -> MultiLabelEvaluation:
    """The model's scores on manifest entries (files that fail to load are named with the run's)."""
    from tlstudio.core.results.multilabel_evaluation import evaluate_multilabel_items

    assert session.manifest is not None and session.image_size is not None  # (set before training starts)

    def progress(done: int, total: int) -> None:
        session.emit(ev.Finishing(step, done, total))

    def predict(x):
        if session.strategy is not None:
            return np.asarray(model(x.astype(np.float32), training=False))
        return model.predict_on_batch(x.astype(np.float32))

    progress(0, len(entries))
    evaluation = evaluate_multilabel_items(
        predict,
        session.manifest.classes,
        thresholds,
        session.image_size,
        session.data_dir,
        [(e.path, e.labels) for e in entries],
        progress=progress,
    )
    for skipped in evaluation.skipped:
        session.load_errors.add(skipped["path"], f"{skipped['reason']} ({step})")
    return evaluation


def tune_on_validation(session: RunState, model) -> list[float]:
    """Per-label thresholds of the highest F1 on the validation split (``MULTI_LABEL_THRESHOLD``
    without one), written to ``RUN/thresholds.json``.

    Returns:
        One threshold per label, in the model's label order.
    """
    from tlstudio.core.results.multilabel_metrics import tune_thresholds

    assert session.manifest is not None  # (set before training starts)
    labels = session.manifest.classes
    val = session.manifest.subset("val")
    thresholds = [MULTI_LABEL_THRESHOLD] * len(labels)
    if val:
        step = "tuning each label's threshold on the validation split"
        evaluation = evaluate_multilabel_entries(session, model, val, thresholds, step)
        thresholds = tune_thresholds(evaluation.targets, evaluation.probs)
    atomic.write_json(session.run_dir / files.THRESHOLDS, dict(zip(labels, thresholds, strict=True)))
    return thresholds


def evaluate_test_multilabel(session: RunState, model, test) -> dict[str, float]:
    """The test split's scores at the tuned thresholds (``evaluation.json``, ``report.html``), as run
    metrics."""
    from tlstudio.core.results.multilabel_report import write_multilabel_report

    evaluation = evaluate_multilabel_entries(
        session, model, test, session.thresholds, "evaluating on the test split"
    )
    atomic.write_json(session.run_dir / files.EVALUATION, evaluation.to_dict(with_predictions=True))
    session.emit(ev.Finishing("writing the report"))
    write_multilabel_report(
        session.run_dir / files.REPORT,
        evaluation,
        session.data_dir,
        title=f"TL Studio run {session.run_dir.name} — {session.settings.backbone}",
        run_dir=session.run_dir,
    )
    m = evaluation.metrics
    out = {
        "test_images": evaluation.num_images,
        "test_micro_map": m["micro_map"],
        "test_macro_f1": m["macro"]["f1"],
        "test_micro_f1": m["micro"]["f1"],
        "test_subset_accuracy": m["subset_accuracy"],
        "test_hamming_loss": m["hamming_loss"],
    }
    if m["macro_map"] is not None:
        out["test_macro_map"] = m["macro_map"]
    for key in ("macro_map", "subset_accuracy"):
        if key in m["intervals"]:
            out[f"test_{key}_low"], out[f"test_{key}_high"] = m["intervals"][key]
    return out


def multilabel_verdict(
    metrics: dict[str, float], manifest: Manifest, pos_weight: np.ndarray | None = None
) -> str | None:
    """Why a multi-label run did not learn, or None: its final binary cross-entropy on the validation
    split (the training split with fewer than 10 validation images) is no lower than that of answering
    each label's share of the training images for every image (the best a model that sees nothing
    can do; with class weights, the loss and the best constant answer are the weighted ones).

    Args:
        metrics: the run's metrics (``val_loss`` or ``loss``).
        manifest: the run's multi-label split.
        pos_weight: the positive weight per label the run's loss used, or None.

    Returns:
        The reason in words, or None.
    """
    from tlstudio.core.data.pipeline import multi_hot
    from tlstudio.core.training.probe_multilabel import binary_cross_entropy

    val = manifest.subset("val")
    use_val = len(val) >= 10 and "val_loss" in metrics
    entries = val if use_val else manifest.subset("train")
    loss = metrics.get("val_loss" if use_val else "loss")
    if loss is None or not entries:
        return None
    labels = manifest.classes
    share = multi_hot([e.labels for e in manifest.subset("train")], labels).mean(0)
    truth = multi_hot([e.labels for e in entries], labels)
    w = np.ones(len(labels)) if pos_weight is None else np.asarray(pos_weight, np.float64)
    constant = w * share / (w * share + 1 - share)  # the weighted loss's best constant (w = 1: the share)
    baseline = binary_cross_entropy(
        truth, np.broadcast_to(np.clip(constant, 1e-3, 1 - 1e-3), truth.shape), pos_weight
    )
    if loss < baseline:
        return None
    split = "validation" if use_val else "training"
    return (
        f"the model did not learn: its {split} loss {loss:.3f} is no lower than answering each label's "
        f"share of the training images ({baseline:.3f}). Try: pretrained weights instead of none, more "
        "epochs, a higher --learning-rate, more images per label, or check the labels. Nothing was exported."
    )
