"""What a sweep's folder says about its study now, for a view that follows it while it runs.

Workers rewrite ``OUT/trials.json`` every few seconds and ``OUT/sweep.json`` at the end; reading them
needs neither Optuna nor the storage (a PostgreSQL server may be out of reach of the reader).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tlstudio.core.results.run_history import read_json

SNAPSHOT = "trials.json"  # the study's trials as a worker last saw them
SWEEP_JSON = "sweep.json"  # the summary, written when the study is complete


@dataclass(frozen=True)
class Board:
    """A sweep at one moment.

    Attributes:
        folder: the sweep's folder.
        study: the study's name.
        rows: one dict per trial (``sweep.trial_rows``), in number order.
        best: the best complete trial so far (its row), or None.
        summary: ``sweep.json`` once the study is complete, else None.
    """

    folder: Path
    study: str
    rows: list[dict]
    best: dict | None
    summary: dict | None

    @property
    def finished(self) -> bool:
        """Whether the study is complete and summed up."""
        return self.summary is not None

    def counts(self) -> dict[str, int]:
        """Trials per state (complete, running, fail, surplus, waiting, pruned)."""
        out: dict[str, int] = {}
        for row in self.rows:
            out[row["state"]] = out.get(row["state"], 0) + 1
        return out


def is_sweep(folder: str | os.PathLike[str]) -> bool:
    """Whether a folder is a sweep's (a worker has written its trials there)."""
    return (Path(folder) / SNAPSHOT).is_file()


def read_board(folder: str | os.PathLike[str]) -> Board:
    """The sweep in ``folder`` as its files say now (an empty board before the first snapshot)."""
    folder = Path(folder)
    snapshot = read_json(folder / SNAPSHOT)
    summary = read_json(folder / SWEEP_JSON) or None
    rows = (summary or {}).get("trials_table") or snapshot.get("trials") or []
    maximize = snapshot.get("direction", "maximize") == "maximize"
    scored = [r for r in rows if r["state"] == "complete" and r.get("value") is not None]
    best = (max if maximize else min)(scored, key=lambda r: r["value"]) if scored else None
    if summary:  # the summary's best (the same, unless trials tie on their value)
        best = next((r for r in rows if r["number"] == summary["best"]["trial"]), best)
    return Board(folder, snapshot.get("study") or (summary or {}).get("study", ""), rows, best, summary)
