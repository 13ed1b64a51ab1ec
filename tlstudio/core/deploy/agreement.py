"""How an artefact's outputs compare with the trained model's: top-1 classes, or per-label decisions."""

from __future__ import annotations

import numpy as np

Agreement = tuple[float, float, float, dict[str, dict[str, float]], str]


def top1_agreement(
    probs: np.ndarray, reference: np.ndarray, truth: np.ndarray, labels: list[str]
) -> Agreement:
    """Single-label: the share of images whose top class is the trained model's, and accuracies.

    Args:
        probs: the artefact's probabilities (images, classes).
        reference: the trained model's.
        truth: each image's class index.
        labels: class names.

    Returns:
        (agreement, accuracy, reference accuracy, per class, '' — the rule's words are top-1's).
    """
    got, want = probs.argmax(1), reference.argmax(1)
    accuracy, reference_accuracy = float((got == truth).mean()), float((want == truth).mean())
    per_class = {}
    for i, label in enumerate(labels):
        mask = truth == i
        if mask.any():
            a, r = float((got[mask] == i).mean()), float((want[mask] == i).mean())
            per_class[label] = {
                "images": int(mask.sum()),
                "accuracy": a,
                "reference_accuracy": r,
                "change": a - r,
            }
    return float((got == want).mean()), accuracy, reference_accuracy, per_class, ""


def decision_agreement(
    probs: np.ndarray, reference: np.ndarray, truth: np.ndarray, labels: list[str], thresholds: list[float]
) -> Agreement:
    """Multi-label: the share of (image, label) decisions at the thresholds equal to the trained
    model's, and the share right against the truth (label accuracy, 1 − Hamming loss).

    Args:
        probs: the artefact's per-label probabilities (images, labels).
        reference: the trained model's.
        truth: (images, labels) 0/1.
        labels: label names.
        thresholds: each label's threshold.

    Returns:
        (agreement, label accuracy, reference label accuracy, per label, 'label-decision ').
    """
    cut = np.asarray(thresholds, np.float32)
    got, want, true = probs >= cut, reference >= cut, np.asarray(truth) > 0.5
    per_label = {}
    for j, label in enumerate(labels):
        a, r = float((got[:, j] == true[:, j]).mean()), float((want[:, j] == true[:, j]).mean())
        per_label[label] = {
            "images": len(true),
            "accuracy": a,
            "reference_accuracy": r,
            "change": a - r,
            "agreement": float((got[:, j] == want[:, j]).mean()),
        }
    accuracy, reference_accuracy = float((got == true).mean()), float((want == true).mean())
    return float((got == want).mean()), accuracy, reference_accuracy, per_label, "label-decision "
