"""Words for numbers, the same in the core, the CLI and the app."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, singular for exactly one.

    Args:
        n: how many.
        noun: the singular ("layer", "usable image", "class").
        plural: when adding "s" (or "es" after s, x, ch, sh) is wrong.

    Example:
        ``counted(1, "layer")`` is "1 layer"; ``counted(3, "class")`` is "3 classes".
    """
    if n == 1:
        return f"{n} {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")
    return f"{n} {plural}"
