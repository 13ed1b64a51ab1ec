"""The project file (JSON) the GUI and the CLI share: data folder, split, settings, run history.

A project lives in a file like ``flowers.tlstudio.json``; its split manifest is kept beside it
(``flowers.tlstudio.manifest.csv``) and its runs under ``flowers-runs/``. Saving is atomic
(temporary file, then rename), so a crash or a kill never leaves a broken project file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from tlstudio.core import atomic
from tlstudio.core.settings import TrainSettings

SUFFIX = ".tlstudio.json"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 256 * 10**6  # a project with 100,000 runs and a million kept labels is well below


def _one_line(err: Exception) -> str:
    """An error's text on one line, cut short (a hostile file can make it long)."""
    text = " ".join(str(err).split())
    return text if len(text) <= 200 else text[:199] + "…"


class RunEntry(TypedDict, total=False):
    """A run as the project file records it (``run.json`` in its folder has the last word).

    ``run_dir`` is always there (an absolute path); ``status`` is what the project last heard
    (``core.vocabulary.RunStatus``, read from a file: any text); ``started``/``finished`` are local
    ISO times.
    """

    run_dir: str
    status: str
    metrics: dict[str, float]
    backbone: str
    started: str
    finished: str


@dataclass
class Project:
    """Everything a person set up, and what their runs produced."""

    path: Path | None = None
    data_dir: str | None = None
    settings: TrainSettings = field(default_factory=lambda: TrainSettings(backbone=""))
    runs: list[RunEntry] = field(default_factory=list)
    kept_labels: list[str] = field(default_factory=list)  # images a person checked and kept as labelled

    @property
    def name(self) -> str:
        """The file name without the suffix, or "Untitled"."""
        if self.path is None:
            return "Untitled"
        return self.path.name.removesuffix(SUFFIX).removesuffix(".json")

    @property
    def manifest_path(self) -> Path | None:
        """Where this project's split manifest is kept."""
        if self.path is None:
            return None
        return self.path.with_name(self.name + ".tlstudio.manifest.csv")

    @property
    def runs_dir(self) -> Path:
        """Folder holding this project's run folders."""
        base = self.path.parent if self.path else Path.cwd()
        return base / f"{self.name}-runs"

    def new_run_dir(self) -> Path:
        """A fresh, time-stamped run folder path (not created)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        candidate = self.runs_dir / f"run-{stamp}"
        n = 1
        while candidate.exists():
            n += 1
            candidate = self.runs_dir / f"run-{stamp}-{n}"
        return candidate

    def record_run(self, run_dir: Path, status: str, metrics: dict[str, float]) -> None:
        """Add a run to the history, or update its entry: a run is recorded when it starts
        (``running``), so a crash of the process that ran it cannot lose it, and again when it ends
        (a resumed run updates its entry too). Its folder is kept as an absolute path, so the project
        finds it from wherever it is opened. The entry's status is what the project last heard;
        the run folder's ``run.json`` has the last word (``run_history.load_run``).

        Args:
            run_dir: the run's folder.
            status: "running" when it starts, then how it ended.
            metrics: its results ({} while running).
        """
        run_dir = Path(run_dir).absolute()
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        entry: RunEntry = {
            "run_dir": str(run_dir),
            "status": status,
            "metrics": metrics,
            "backbone": self.settings.backbone,
        }
        if status == "running":
            entry["started"] = now
        else:
            entry["finished"] = now
        for i, old in enumerate(self.runs):
            if old.get("run_dir") == str(run_dir):
                if "backbone" in old:  # what it started with, and when
                    entry["backbone"] = old["backbone"]
                if "started" in old:
                    entry["started"] = old["started"]
                self.runs[i] = entry
                return
        self.runs.append(entry)

    def forget_run(self, run_dir: Path) -> None:
        """Drop a run from the history (one refused before it made its folder: nothing to keep)."""
        folder = str(Path(run_dir).absolute())
        self.runs = [r for r in self.runs if r.get("run_dir") != folder]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "format": FORMAT_VERSION,
            "data_dir": self.data_dir,
            "settings": self.settings.to_dict(),
            "runs": self.runs,
            "kept_labels": sorted(set(self.kept_labels)),
        }

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the project atomically; ``path`` sets where (and is remembered)."""
        if path is not None:
            self.path = Path(path)
        if self.path is None:
            raise ValueError("the project has no file yet: give a path")
        return atomic.write_json(self.path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Project:
        """Read a project file."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as err:
            raise ValueError(f"cannot read project {path}: {_one_line(err)}") from err
        if size > MAX_FILE_BYTES:  # said before a byte is read: no project file is near this
            raise ValueError(
                f"{path} is {size / 1e6:,.0f} MB: not a TL Studio project "
                f"(a project file is at most {MAX_FILE_BYTES / 1e6:.0f} MB)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:
            raise ValueError(f"{path} is not a TL Studio project: its JSON is nested too deeply") from None
        except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON, a 5,000-digit number
            raise ValueError(f"cannot read project {path}: {_one_line(err)}") from err
        version = data.get("format") if isinstance(data, dict) else None
        if type(version) is not int or version != FORMAT_VERSION:  # (true is not format 1)
            raise ValueError(f"{path} is not a TL Studio project (format {FORMAT_VERSION})")
        data_dir = data.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise ValueError(f"{path}: data_dir must be a folder path (text), not {data_dir!r}")
        runs = data.get("runs") or []
        if not isinstance(runs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("run_dir"), str) for r in runs
        ):
            raise ValueError(f"{path}: runs must be a list of objects, each with a run_dir path")
        kept = data.get("kept_labels") or []
        if not isinstance(kept, list) or not all(isinstance(k, str) for k in kept):
            raise ValueError(f"{path}: kept_labels must be a list of image paths (text)")
        settings = data.get("settings") or {"backbone": ""}
        try:
            settings = TrainSettings.from_dict(settings)
        except ValueError as err:
            raise ValueError(f"{path}: {_one_line(err)}") from err
        except RecursionError:
            raise ValueError(f"{path}: its settings are nested too deeply") from None
        return cls(path=path, data_dir=data_dir, settings=settings, runs=list(runs), kept_labels=list(kept))
