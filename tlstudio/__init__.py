"""TL Studio: transfer learning on images with Keras, as a desktop app and a headless CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The Python API (``tlstudio.api``), loaded on first use: ``import tlstudio`` stays light (no TensorFlow,
# no NumPy), as ``tlstudio --help`` must.
_API = ("evaluate", "export", "inspect", "predict", "rank", "train")
__all__ = ["__version__", *_API]

if TYPE_CHECKING:
    from tlstudio.api import evaluate, export, inspect, predict, rank, train  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _API:
        from tlstudio import api

        return getattr(api, name)
    raise AttributeError(f"module 'tlstudio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
