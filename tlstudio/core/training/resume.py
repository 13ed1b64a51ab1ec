"""Where a run is, saved after every epoch so that a killed run can continue: ``--resume``.

``checkpoints/last.weights.h5`` holds the weights at the end of the last finished epoch,
``checkpoints/probe.weights.h5`` the linear probe's (for WiSE-FT), and ``checkpoints/last.json`` the
phase, the epoch, where the phase began, the best value so far and whether the recipe escalated.
On resume the interrupted phase continues from the next epoch with its learning-rate schedule at
the same step; the optimizer's moment estimates start afresh (they are not saved), so a resumed run
is comparable to an uninterrupted one, not bit-identical.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tlstudio.core import atomic
from tlstudio.core.results.run_folder import LAST_WEIGHTS

PROBE_WEIGHTS = "probe.weights.h5"
LAST_STATE = "last.json"


@dataclass
class ResumeState:
    """What ``last.json`` records."""

    phase: int  # index in the recipe
    epoch: int  # the last finished epoch (absolute)
    phase_first_epoch: int
    best: float
    best_epoch: int | None
    phase_done: bool
    escalated: bool = False


def save(folder: Path, model, state: ResumeState) -> None:
    """Write the weights, then the state that points at them (both atomically)."""
    with atomic.replacing(folder / LAST_WEIGHTS) as tmp:
        model.save_weights(tmp)
    atomic.write_json(folder / LAST_STATE, asdict(state))


def save_probe(folder: Path, model) -> None:
    """The probe's weights, for interpolation after a resumed fine-tune phase."""
    with atomic.replacing(folder / PROBE_WEIGHTS) as tmp:
        model.save_weights(tmp)


def load(folder: Path) -> ResumeState | None:
    """The saved state, or None when the run never finished an epoch."""
    path = folder / LAST_STATE
    if not path.is_file() or not (folder / LAST_WEIGHTS).is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["best"] = float(data["best"]) if data.get("best") is not None else float("inf")
    return ResumeState(**data)
