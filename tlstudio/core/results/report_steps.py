"""The report's account of the recipe's later steps, read from history.json: the checkpoint soup (which
epochs were averaged, what it gained on validation, with a figure) or why there was none."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any


def soup_figure(soup: dict[str, Any], new_figure: Callable[[float, float], Any]):
    """Validation loss of the best epoch alone and of each trial soup, accepted ones filled."""
    tried = soup["tried"]
    fig = new_figure(5.5, 3.2)
    ax = fig.add_subplot()
    x = list(range(len(tried)))
    losses = [t["val_loss"] for t in tried]
    ax.plot(x, losses, ":", color="grey")
    for i, t in enumerate(tried):
        filled = t["accepted"]
        ax.plot(i, t["val_loss"], "o", color="C0" if filled else "C3", fillstyle="full" if filled else "none")
    names = ["best epoch"] + [f"+ epoch {t['epoch'] + 1}" for t in tried[1:]]
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.axhline(soup["val_loss"], color="C0", lw=0.8, label=f"soup: {soup['val_loss']:.4f}")
    ax.set(ylabel="validation loss", title="Greedy soup (filled: averaged in; open: rejected)")
    ax.legend()
    return fig


def soup_section(
    history: dict[str, Any] | None, png: Callable[[Any], str], new_figure: Callable[[float, float], Any]
) -> list[str]:
    """HTML parts for the checkpoint soup; none when the run had no fine-tune phase with a soup.

    Args:
        history: the run's history.json.
        png: turns a matplotlib figure into an embeddable image address (``report._png``).
        new_figure: makes an empty figure of a width and height in inches (``report.new_figure``).

    Returns:
        A heading and its paragraphs (and figure), or an empty list.
    """
    soup = (history or {}).get("soup")
    if not soup:
        return []
    parts = ["<h2>Checkpoint soup</h2>"]
    if soup.get("skipped"):
        return [*parts, f"<p>Not made: {html.escape(soup['skipped'])}.</p>"]
    epochs = ", ".join(str(e + 1) for e in soup["ingredients"])
    if soup["used"]:
        said = (
            f"The fine-tuned weights are the average of epochs {epochs} ({len(soup['ingredients'])} of "
            f"the {soup['kept']} best kept): validation loss {soup['best_val_loss']:.4f} → "
            f"{soup['val_loss']:.4f}, accuracy {soup['best_val_accuracy']:.3f} → {soup['val_accuracy']:.3f} "
            f"against the best epoch alone."
        )
    else:
        said = (
            f"Not used: averaging the best epoch ({epochs}) with any other of the {soup['kept']} kept "
            "raised the validation loss, so the best epoch alone is the fine-tuned endpoint."
        )
    parts.append(f"<p>{said} WiSE-FT's α is chosen after it.</p>")
    if len(soup.get("tried", [])) > 1:
        parts.append(f"<img src='{png(soup_figure(soup, new_figure))}'>")
    return parts
