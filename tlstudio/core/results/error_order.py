"""Prediction records (``{"true", "predicted", "confidence", ...}``) picked and ordered for the error
gallery, in plain Python (no NumPy: the window's start-up path uses them)."""

from __future__ import annotations


def cell_predictions(predictions: list[dict], true: str, predicted: str) -> list[dict]:
    """Prediction records whose true and predicted classes are these."""
    return [p for p in predictions if p["true"] == true and p["predicted"] == predicted]


def ordered_errors(predictions: list[dict], order: str = "confidently_wrong") -> list[dict]:
    """Wrong predictions, most confident first; or with ``least_confident`` every prediction,
    least confident first."""
    if order == "least_confident":
        return sorted(predictions, key=lambda p: p["confidence"])
    wrong = [p for p in predictions if p["true"] != p["predicted"]]
    return sorted(wrong, key=lambda p: -p["confidence"])
