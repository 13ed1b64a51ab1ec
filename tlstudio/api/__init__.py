"""TL Studio's Python API: the CLI's commands as functions that return the core's result objects.

``from tlstudio import inspect, train, evaluate, export, predict, rank`` gives a notebook the whole
job in a few lines. Each function checks its input first (a one-line ``ValueError`` before any work,
as the CLI exits 2), then calls the same core the CLI calls and returns its result (a report, a
``RunResult``, an ``Evaluation``, ``DeployResult`` s), raising the core's own exceptions on failure.
Keyword defaults are read from ``tlstudio.core.settings`` (one source with the CLI and the app).
TensorFlow is imported inside the calls, so importing this package stays light.

The examples of the functions continue one another, as the cells of a notebook do (the test suite
runs them in this order, in an empty folder): ``inspect`` makes a tiny folder of coloured images,
``rank`` a tiny backbone, ``train`` a run that ``evaluate``, ``predict`` and ``export`` use.
Keras callbacks of the recipe, for your own ``model.fit``, are in ``tlstudio.callbacks``.
"""

from __future__ import annotations

from tlstudio.api.data import inspect, rank
from tlstudio.api.results import evaluate, export, predict
from tlstudio.api.training import train

__all__ = ["evaluate", "export", "inspect", "predict", "rank", "train"]

EXAMPLE_ORDER = ("inspect", "rank", "train", "evaluate", "predict", "export")
"""The order in which the functions' examples run: each uses what the earlier ones made."""
