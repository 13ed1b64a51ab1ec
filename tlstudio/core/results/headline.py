"""The one line a run is summed up by, in plain Python (no NumPy: the window's start-up path uses it)."""

from __future__ import annotations


def headline(metrics: dict[str, float]) -> str:
    """The one line a run is summed up by, the same in the CLI, the Train and the Export panels.

    Args:
        metrics: a run's metrics (``test_accuracy`` and its Wilson interval when there is a test
            split, else ``val_accuracy``).

    Returns:
        e.g. ``"test accuracy 0.950 (95% interval 0.91–0.97, 120 images)"`` (multi-label: the test
        macro mAP), or ``"no test split"``
        followed by the validation accuracy when there is one.
    """
    if "test_macro_map" in metrics:  # multi-label
        text = f"test macro mAP {metrics['test_macro_map']:.3f}"
        if "test_macro_map_low" in metrics and "test_images" in metrics:
            low, high = metrics["test_macro_map_low"], metrics["test_macro_map_high"]
            text += f" (95% interval {low:.2f}–{high:.2f}, {int(metrics['test_images'])} images)"
        return text
    if "test_accuracy" in metrics:
        text = f"test accuracy {metrics['test_accuracy']:.3f}"
        if "test_accuracy_low" in metrics and "test_images" in metrics:
            low, high, n = (
                metrics["test_accuracy_low"],
                metrics["test_accuracy_high"],
                int(metrics["test_images"]),
            )
            text += f" (95% interval {low:.2f}–{high:.2f}, {n} images)"
        return text
    if "val_accuracy" in metrics:
        return f"no test split; validation accuracy {metrics['val_accuracy']:.3f}"
    return "no test split"
