"""Calibration for multi-label runs: Platt scaling per label, fitted on the validation split and baked
into the output layer, so every export gives the calibrated probabilities.

Each label's probability becomes sigmoid(a·z + b), z its logit: a temperature (1/a) and a shift (b),
the shift undoing what class weights did to the label's base rate. (a, b) maximise the validation
likelihood with a weak Gaussian prior at the identity (a = 1, b = 0), worth one image: it keeps a
label that validation separates perfectly from an infinite slope, and the calibrated validation loss
is never above the uncalibrated one. a ≥ ``MIN_SCALE``, so a label's ranking (its AP) never changes.
Labels without both kinds of image in validation keep a = 1, b = 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import minimize

from tlstudio.core import atomic
from tlstudio.core import events as ev
from tlstudio.core.backbone.classifier import scale_outputs
from tlstudio.core.results import run_folder as files
from tlstudio.core.training.probe_multilabel import binary_cross_entropy, sigmoid

if TYPE_CHECKING:
    from tlstudio.core.training.run_state import RunState

MIN_SCALE = 1e-3  # the slope stays positive: calibration must not reorder a label's images
EPSILON = 1e-7


def logits_of(probs: np.ndarray) -> np.ndarray:
    """The logits of sigmoid probabilities (clipped to [ε, 1 - ε])."""
    p = np.clip(np.asarray(probs, np.float64), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def fit_platt(logits: np.ndarray, truth: np.ndarray) -> tuple[float, float] | None:
    """One label's Platt scaling (a, b): sigmoid(a·z + b) of the highest likelihood, with a prior at
    (1, 0) worth one image (a penalty of ((a - 1)² + b²) / 2n on the mean cross-entropy).

    Args:
        logits: (n,) the label's logits.
        truth: (n,) 0/1 whether each image has the label.

    Returns:
        (a, b), or None when the images lack positives or negatives (nothing to fit).

    Example:
        >>> a, b = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0, 1, 0, 1]))
        >>> a >= 0
        True
    """
    y = (np.asarray(truth, np.float64) > 0.5).astype(np.float64)
    if not y.any() or y.all():
        return None
    z = np.asarray(logits, np.float64)
    n = len(z)

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        x = params[0] * z + params[1]
        prior = params - np.array([1.0, 0.0])
        loss = float((np.logaddexp(0.0, x) - y * x).mean() + 0.5 * (prior**2).sum() / n)
        delta = (sigmoid(x) - y) / n
        return loss, np.array([float(delta @ z), float(delta.sum())]) + prior / n

    found = minimize(
        loss_and_grad,
        np.array([1.0, 0.0]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(MIN_SCALE, None), (None, None)],
    )
    return float(found.x[0]), float(found.x[1])


def calibrate_multilabel(session: RunState, model) -> dict[str, float]:
    """Fit each label's Platt scaling on the validation split, bake it into the ``predictions`` layer
    (kernel·a, bias·a + b) and write ``RUN/calibration.json`` ({label: {"scale", "shift"}}).

    Returns:
        The run's calibration metrics: validation binary cross-entropy and macro ECE before and after.
    """
    from tlstudio.core.results.multilabel_curves import label_curves
    from tlstudio.core.settings import MULTI_LABEL_THRESHOLD
    from tlstudio.core.training.multilabel_outcome import evaluate_multilabel_entries

    assert session.manifest is not None  # (set before training starts)
    labels = session.manifest.classes
    val = evaluate_multilabel_entries(
        session,
        model,
        session.manifest.subset("val"),
        [MULTI_LABEL_THRESHOLD] * len(labels),
        "calibrating each label on the validation split",
    )
    z = logits_of(val.probs)
    scale, shift, left = np.ones(len(labels)), np.zeros(len(labels)), []
    for i, name in enumerate(labels):
        fitted = fit_platt(z[:, i], val.targets[:, i])
        if fitted is None:
            left.append(name)
        else:
            scale[i], shift[i] = fitted
    scale_outputs(model, scale, shift)
    if left:
        session.emit(
            ev.RecipeChanged(
                f"calibration: {', '.join(left)} not calibrated (the validation split has no image "
                "with it, or none without it)"
            )
        )
    atomic.write_json(
        session.run_dir / files.CALIBRATION,
        {n: {"scale": float(a), "shift": float(b)} for n, a, b in zip(labels, scale, shift, strict=True)},
    )
    calibrated = sigmoid(scale * z + shift)
    return {
        "val_log_loss_before_calibration": binary_cross_entropy(val.targets, val.probs),
        "val_log_loss_calibrated": binary_cross_entropy(val.targets, calibrated),
        "val_macro_ece_before_calibration": _macro_ece(label_curves(val.targets, val.probs, labels)),
        "val_macro_ece_calibrated": _macro_ece(label_curves(val.targets, calibrated, labels)),
    }


def _macro_ece(curves: dict) -> float:
    return float("nan") if curves["macro_ece"] is None else float(curves["macro_ece"])
