"""The app's state: one Qt-free model of what the window shows, which every panel follows.

napari's way: the panels read this object and subscribe to its changes; none of them keeps a copy
of the project's truth or reaches into a sibling. New / Open replace the whole state
(``replace_project``), so nothing of one project survives into the next.

What it holds: the project (file, settings, run history), the data folder's report, the chosen
backbone, the freeze plan, the selected run, whether TensorFlow is loaded and the long job in flight.
A change is announced to the callbacks subscribed to its aspect (plain callables, called in order on
the thread that made the change: the GUI thread).

Example:
    >>> state = AppState()
    >>> seen = []
    >>> state.subscribe("project", lambda: seen.append(state.project.name))
    >>> state.replace_project(Project())
    >>> seen
    ['Untitled']
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.project import Project
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_history import RunRecord, best_run, project_runs

Aspect = Literal["project", "data", "backbone", "plan", "runs", "selected_run", "tensorflow", "task"]
ASPECTS: tuple[str, ...] = get_args(Aspect)


@dataclass(frozen=True)
class BackboneChoice:
    """The backbone a person chose: its resolved spec, the starting weights and the input size."""

    spec: Any  # core.backbone.registry.BackboneSpec (resolved off the GUI thread)
    weights: str
    image_size: int

    @property
    def source(self) -> str:
        """What the settings store for it: the file, folder or handle the user gave, else the name."""
        return str(self.spec.source or self.spec.name)


class AppState:
    """See the module docstring."""

    def __init__(self, project: Project | None = None):
        self._listeners: dict[str, list[Callable[[], None]]] = defaultdict(list)
        self.project = project or Project()
        self.report: Any = None  # core.data.health.DatasetReport of the project's data folder
        self.backbone: BackboneChoice | None = None
        self.plan: FreezePlan | None = None  # None until the backbone's layers are shown
        self.selected_run: Path | None = None
        self.tensorflow_ready = False
        self.task: str | None = None  # the long job in flight, in words ("training", …)
        self._dispatching = 0  # > 0 while subscribers are told of a change
        self._runs_read: tuple[tuple, list[RunRecord]] | None = None  # the runs read meanwhile
        self.selected_run = self.default_run()

    # -- notifications ------------------------------------------------------------------------------
    def subscribe(self, aspect: Aspect, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change of ``aspect``.

        Args:
            aspect: one of ``ASPECTS``; "project" also fires when a project replaces the last one
                (then every other aspect was reset too).
            callback: takes no arguments; reads the state it needs.
        """
        if aspect not in ASPECTS:
            raise ValueError(f"no aspect {aspect!r}: one of {', '.join(ASPECTS)}")
        self._listeners[aspect].append(callback)

    def _changed(self, *aspects: str) -> None:
        self._dispatching += 1  # every subscriber of this change reads the run folders once, not each
        try:
            for aspect in aspects:
                for callback in list(self._listeners[aspect]):
                    callback()
        finally:
            self._dispatching -= 1
            if not self._dispatching:
                self._runs_read = None

    # -- the project ----------------------------------------------------------------------------------
    def replace_project(self, project: Project) -> None:
        """Show another project (New, Open, the sample): everything of the previous one is dropped."""
        self.project = project
        self.report = None
        self.backbone = None
        self.plan = None
        self.selected_run = self.default_run()
        self._changed("project", "data", "backbone", "plan", "runs", "selected_run")

    def set_data_dir(self, folder: str | None) -> None:
        """The project's data folder ("data" fires); a report of another folder is dropped."""
        self.project.data_dir = folder
        if self.report is not None and not _same_folder(_source(self.report), folder):
            self.report = None
        self._changed("data")

    def set_report(self, report: Any) -> bool:
        """A finished scan of the project's data folder; one of another folder (a scan started
        before the project changed) is refused.

        Returns:
            Whether the report was taken.
        """
        if not _same_folder(_source(report), self.project.data_dir):
            return False
        self.report = report
        self._changed("data")
        return True

    def set_backbone(self, choice: BackboneChoice | None) -> None:
        """The chosen backbone; its freeze plan is dropped when it is another backbone."""
        if choice is None or self.backbone is None or choice.source != self.backbone.source:
            self.plan = None
        self.backbone = choice
        self._changed("backbone")

    def set_plan(self, plan: FreezePlan | None) -> None:
        """The freeze plan the Layers panel shows."""
        self.plan = plan
        self._changed("plan")

    def set_tensorflow_ready(self) -> None:
        """TensorFlow is loaded: work that needs it may start."""
        self.tensorflow_ready = True
        self._changed("tensorflow")

    def set_task(self, words: str | None) -> None:
        """The long job in flight (None: none)."""
        self.task = words
        self._changed("task")

    # -- runs -----------------------------------------------------------------------------------------
    @property
    def runs(self) -> list[RunRecord]:
        """The project's runs as their folders say (a dead process's run reads ``interrupted``): read
        anew each time, except while one change is told to the subscribers (a new project told 7
        aspects; each panel's refresh read every run folder again)."""
        key = tuple((str(r.get("run_dir")), r.get("status")) for r in self.project.runs)
        if self._dispatching and self._runs_read is not None and self._runs_read[0] == key:
            return self._runs_read[1]
        records = project_runs(self.project.runs)
        if self._dispatching:
            self._runs_read = (key, records)
        return records

    def default_run(self) -> Path | None:
        """The run panels act on when none is chosen: the best finished run by validation."""
        best = best_run(self.runs)
        return best.run_dir if best is not None else None

    def select_run(self, run_dir: str | os.PathLike[str] | None) -> None:
        """The run Evaluate, Export, Label next and Grad-CAM act on."""
        run = Path(run_dir).absolute() if run_dir is not None else None
        if run == self.selected_run:
            return
        self.selected_run = run
        self._changed("selected_run")

    def selected_record(self) -> RunRecord | None:
        """The selected run's record (None: no run selected, or its folder is gone)."""
        if self.selected_run is None:
            return None
        return next((r for r in self.runs if r.run_dir.absolute() == self.selected_run), None)

    def run_started(self, run_dir: Path) -> None:
        """A run was started: the project records it now (``running``), so a crash cannot lose it."""
        self.project.record_run(run_dir, "running", {})
        self._save()
        self._changed("runs")

    def run_ended(self, run_dir: Path, status: str, metrics: dict[str, float], recorded: bool) -> None:
        """A run ended (``recorded``: it claimed its folder; otherwise it is dropped from the
        project). The selection goes to the best finished run by validation — the new run when it
        is the best, never merely because it is the latest (a from-scratch baseline is not)."""
        if recorded:
            self.project.record_run(run_dir, status, metrics)
        else:
            self.project.forget_run(run_dir)
        self._save()
        self._changed("runs")
        self.select_run(self.default_run())

    def adopt_run(self, run_dir: str | os.PathLike[str], status: str, metrics: dict[str, float]) -> None:
        """A run made elsewhere (a sweep's trial) joins the project's runs and is selected."""
        self.project.record_run(Path(run_dir), status, metrics)
        self._save()
        self._changed("runs")
        self.select_run(run_dir)

    def runs_changed(self) -> None:
        """Run folders changed on disk (a resumed run, an export): panels read them again."""
        self._changed("runs")

    def _save(self) -> None:
        if self.project.path is not None:
            self.project.save()

    # -- what a run still needs --------------------------------------------------------------------
    def missing_steps(self) -> list[str]:
        """What a run still needs, in the words the Train panel shows."""
        missing = []
        if self.report is None or not self.report.usable:
            missing.append("choose a usable data folder (Data panel)")
        if self.backbone is None:
            missing.append("choose a backbone (Backbone panel)")
        return missing

    def steps_done(self) -> dict[str, bool]:
        """Which workflow steps are done, by the step list's names."""
        runs = self.runs
        selected = self.selected_record()
        return {
            "Data": self.report is not None and self.report.usable,
            "Backbone": self.backbone is not None,
            "Layers": self.plan is not None,
            "Train": any(r.status == "completed" for r in runs),
            "Evaluate": bool(runs),
            "Export": selected is not None and (selected.run_dir / files.EXPORT).is_dir(),
        }


def _source(report: Any) -> str:
    """What a report's data was given as: its labels CSV, or its folder."""
    return getattr(report, "source", report.root)


def _same_folder(a: str | os.PathLike[str] | None, b: str | os.PathLike[str] | None) -> bool:
    if a is None or b is None:
        return False
    return Path(a).absolute() == Path(b).absolute()
