"""What a phase is scored by: ``compile``'s loss and metrics, and the same figures from probabilities."""

from __future__ import annotations

import keras
import numpy as np

from tlstudio.core.training.probe_multilabel import binary_cross_entropy


def loss_and_metrics(multi_label: bool, pos_weight: np.ndarray | None = None) -> dict[str, object]:
    """``compile``'s loss and metrics: softmax cross-entropy and accuracy, or for multi-label data
    binary cross-entropy (with a positive weight per label when ``pos_weight`` is given:
    ``multilabel_weights``) and the share of label decisions right at 0.5 (named ``accuracy`` too)."""
    if multi_label:
        from tlstudio.core.training.multilabel_weights import WeightedBinaryCrossentropy

        loss = "binary_crossentropy" if pos_weight is None else WeightedBinaryCrossentropy(pos_weight)
        return {"loss": loss, "metrics": [keras.metrics.BinaryAccuracy(name="accuracy")]}
    return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def scores(
    probs: np.ndarray, labels: np.ndarray, prefix: str, pos_weight: np.ndarray | None = None
) -> dict[str, float]:
    """Loss and accuracy as ``fit`` reports them (multi-label: 0/1 indicator rows, the loss weighted
    by ``pos_weight`` as the fine-tune's is)."""
    if labels.ndim == 2:
        return {
            f"{prefix}loss": binary_cross_entropy(labels, probs, pos_weight),
            f"{prefix}accuracy": float(((probs >= 0.5) == (labels > 0.5)).mean()),
        }
    labels = labels.astype(np.int64)
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, None)
    return {
        f"{prefix}loss": float(-np.log(picked).mean()),
        f"{prefix}accuracy": float((probs.argmax(1) == labels).mean()),
    }
