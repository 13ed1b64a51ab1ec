"""The linear probe for multi-label data: one-vs-rest logistic regressions on frozen features.

Every label gets its own sigmoid output, fitted jointly (the labels share nothing but the features
and the L2 strength) by minimising the binary cross-entropy summed over labels with the single-label
probe's machinery (``probe.lbfgs``, ``probe._row_space``); the L2 strength is chosen by
cross-validation on folds dealt by iterative stratification, so every fold holds each label.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tlstudio.core.data.iterative_split import iterative_stratification
from tlstudio.core.training.probe import CV_FOLDS, L2_GRID, Probe, _row_space, lbfgs


class SigmoidProbe(Probe):
    """A fitted multi-label probe: independent probabilities per label."""

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Sigmoid probabilities (rows need not sum to 1)."""
        return sigmoid(features @ self.kernel + self.bias)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), without overflow."""
    return np.exp(-np.logaddexp(0.0, -logits))


def binary_cross_entropy(
    targets: np.ndarray, probs: np.ndarray, pos_weight: np.ndarray | None = None
) -> float:
    """Mean over images and labels of the binary cross-entropy (probabilities clipped at 1e-7), as
    Keras' ``binary_crossentropy`` averages it; with ``pos_weight`` (one per label) each label's
    positive term is multiplied by its weight: -(w·y·log p + (1 - y)·log(1 - p))."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    w = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    return float(-(w * targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean())


def multilabel_folds(targets: np.ndarray, folds: int, seed: int) -> np.ndarray | None:
    """A fold per image by iterative stratification; None when a label has fewer than 2 images."""
    y = (np.asarray(targets) > 0.5).astype(np.int64)
    counts = y.sum(0)
    k = int(min(folds, counts.min())) if y.shape[1] else 0
    if k < 2:
        return None
    share = np.full(k, 1.0 / k)
    label_targets = np.outer(share, counts)
    size_targets = share * len(y)
    return iterative_stratification(y, np.ones(len(y), np.int64), label_targets, size_targets, seed)


def fit_multilabel_probe(
    features: np.ndarray,
    targets: np.ndarray,
    *,
    l2_grid: tuple[float, ...] = L2_GRID,
    folds: int = CV_FOLDS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    pos_weight: np.ndarray | None = None,
) -> SigmoidProbe:
    """Fit the one-vs-rest probe, choosing the L2 strength by cross-validation (BCE).

    Args:
        features: (n, d) backbone features.
        targets: (n, labels) 0/1 label indicators.
        l2_grid: candidate L2 strengths on standardised features.
        folds: folds for the choice (fewer when a label has fewer images).
        seed: fold assignment seed.
        progress: called with (fits done, fits in all) after each fit.
        pos_weight: a positive weight per label (``multilabel_weights``), in the fit and in the
            cross-validated loss; None weighs every term 1.

    Returns:
        The probe fitted on all the given images with the chosen L2 (``cv_accuracy`` None: the
        single-label chance test does not apply).
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(targets, np.float64)
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    z, basis = _row_space((x - mean) / std)
    fold_of = multilabel_folds(y, folds, seed)
    scores: dict[float, float] = {}
    fits = 1 + (0 if fold_of is None else len(l2_grid) * (int(fold_of.max()) + 1))
    done = 0
    if fold_of is not None:
        for l2 in l2_grid:
            loss = 0.0
            for k in range(int(fold_of.max()) + 1):
                held = fold_of == k
                weights, _, _ = _fit(z[~held], y[~held], l2, pos_weight)
                done += 1
                if progress is not None:
                    progress(done, fits)
                probs = sigmoid(_logits(z[held], weights))
                loss += binary_cross_entropy(y[held], probs, pos_weight) * held.sum()
            scores[l2] = loss / len(y)
        best = min(scores.values())
        l2 = max(k for k, v in scores.items() if v <= best * 1.01)
    else:
        l2 = l2_grid[0] if len(l2_grid) == 1 else 1e-2
    weights, iterations, converged = _fit(z, y, l2, pos_weight)
    if progress is not None:
        progress(fits, fits)
    kernel_z, bias_z = basis @ weights[:-1], weights[-1]
    kernel = kernel_z / std[:, None]
    bias = bias_z - (mean / std) @ kernel_z
    train_accuracy = float(((_logits(z, weights) > 0) == (y > 0.5)).mean())
    return SigmoidProbe(
        kernel.astype(np.float32),
        bias.astype(np.float32),
        l2,
        scores.get(l2),
        None,
        iterations,
        converged,
        train_accuracy,
    )


def _logits(z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return z @ weights[:-1] + weights[-1]


def _fit(
    z: np.ndarray, y: np.ndarray, l2: float, pos_weight: np.ndarray | None = None, max_iter: int = 500
) -> tuple[np.ndarray, int, bool]:
    """Every label's logistic regression at once: BCE summed over labels, averaged over images (each
    label's positive terms times its ``pos_weight``)."""
    n, d = z.shape
    labels = y.shape[1]
    w = np.ones(labels) if pos_weight is None else np.asarray(pos_weight, np.float64)
    yw = y * w  # weighted BCE with logits: w·y·log(1 + e^-x) + (1 - y)·log(1 + e^x)

    def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weights = flat.reshape(d + 1, labels)
        logits = _logits(z, weights)
        # = (w·y + 1 - y)·log(1 + e^x) - w·y·x, stable for any x (w = 1: log(1 + e^x) - y·x)
        scale = yw + 1 - y
        loss = (scale * np.logaddexp(0.0, logits) - yw * logits).sum() / n
        loss += 0.5 * l2 * (weights[:-1] ** 2).sum()
        delta = (scale * sigmoid(logits) - yw) / n
        grad = np.vstack([z.T @ delta + l2 * weights[:-1], delta.sum(0, keepdims=True)])
        return float(loss), grad.ravel()

    flat, iterations, converged = lbfgs(loss_and_grad, np.zeros((d + 1) * labels), max_iter=max_iter)
    return flat.reshape(d + 1, labels), iterations, converged
