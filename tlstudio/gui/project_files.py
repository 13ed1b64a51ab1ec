"""The window's project files: new, open, save as, the offline sample project, recent projects.

A mixin of ``MainWindow`` (which provides ``project``, ``qsettings``, ``go_to``, ``start_page``,
``set_project`` and ``save_project``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog, QMessageBox

from tlstudio.core.project import SUFFIX, Project
from tlstudio.gui.tf_loader import build_sample_backbone
from tlstudio.gui.worker import Task, failure_line

MAX_RECENT = 8


class ProjectFiles:
    """Project-file actions of the main window."""

    def drop_pending_sample(self) -> None:
        """The sample project whose backbone is still being built is not shown when it is ready
        (the person chose another project meanwhile)."""
        if self.sample_task is not None:
            self.sample_task.retire()
            self.sample_task = None

    def training_blocks(self, action: str) -> bool:
        """Whether a run is training (then the user is told: the run records its result in the
        project it started from, so the project cannot be replaced under it)."""
        if self.train.is_running() or self.state.task is not None:
            QMessageBox.information(
                self, "Training is running", f"Stop training ({self.state.task}) before {action}."
            )
            return True
        return False

    def new_project(self) -> None:
        """Ask where the new project file goes, then start on the Data panel with nothing of the
        previous project."""
        if self.training_blocks("starting a new project"):
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "New project", str(Path.home() / f"project{SUFFIX}"), f"TL Studio projects (*{SUFFIX})"
        )
        if path:
            self.drop_pending_sample()
            self.set_project(Project(path=Path(_with_suffix(path))))
            self.save_project()
            self.go_to("Data")

    def quick_model(self, folder: str | None = None, path: str | None = None) -> None:
        """One click: a data folder (asked for when None), a project file for it (asked for when None:
        beside the folder by default), then the doctor, the backbones at hand ranked, the default
        recipe on the best and every export that passes its check, followed in the Train panel."""
        if self.training_blocks("a quick model"):
            return
        if folder is None:
            folder = QFileDialog.getExistingDirectory(
                self, "Quick model: the data folder (one sub-folder per class)"
            )
            if not folder:
                return
        if path is None:
            suggested = Path(folder).parent / f"{Path(folder).name}{SUFFIX}"
            path, _ = QFileDialog.getSaveFileName(
                self, "Quick model: the project file", str(suggested), f"TL Studio projects (*{SUFFIX})"
            )
            if not path:
                return
        self.drop_pending_sample()
        self.set_project(Project(path=Path(_with_suffix(path)), data_dir=str(folder)))
        self.save_project()
        run_dir = self.project.new_run_dir()
        self.state.run_started(run_dir)
        self.state.set_task("quick model")
        self.go_to("Train")
        self.train.run_quick_model(str(folder), run_dir)

    def open_project(self, path: str | None = None) -> None:
        """Open a project file (asks for one when ``path`` is None)."""
        if self.training_blocks("opening a project"):
            return
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open project", str(Path.home()), f"TL Studio projects (*{SUFFIX})"
            )
            if not path:
                return
        try:
            project = Project.load(path)
        except ValueError as err:
            QMessageBox.warning(self, "Cannot open project", str(err))
            return
        self.drop_pending_sample()
        self.set_project(project)
        self.go_to("Data")

    def open_forwarded(self, path: str) -> bool:
        """A project file offered by a newly started ``tlstudio`` (``gui.single_instance``): shown
        here and the window raised; declined (False) while training, so it opens in a new window."""
        if self.train.is_running():
            return False
        self.open_project(path)
        if self.isMinimized():
            self.showNormal()
        self.raise_()
        self.activateWindow()
        return True

    def open_sample(self) -> None:
        """A project on the bundled digits, kept in the app's data folder, with the bundled small
        CNN as its backbone (built here, offline) — it trains without any download."""
        from tlstudio.package_data import sample_copy

        if self.training_blocks("opening the sample project"):
            return

        folder = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
        path = folder / f"sample{SUFFIX}"
        data = str(sample_copy(folder / "sample_data"))  # the user's own copy: relabelling may move files
        project = Project.load(path) if path.is_file() else Project(path=path, data_dir=data)
        if not Path(project.data_dir or "").is_dir():  # e.g. a sample project of an older install
            project.data_dir = data
        backbone_file = folder / "sample_backbone" / "demo_backbone.keras"
        if not project.settings.backbone:
            from tlstudio.core.data.sample import sample_settings

            project.settings = sample_settings(backbone_file)
        if Path(project.settings.backbone) == backbone_file and not backbone_file.is_file():
            self.statusBar().showMessage("Building the sample's small CNN backbone (offline)…")
            self.sample_task = Task(lambda: build_sample_backbone(backbone_file.parent))
            self.sample_task.done.connect(lambda _: self._show_sample(project))
            self.sample_task.failed.connect(lambda msg: self.statusBar().showMessage(failure_line(msg)))
            self.sample_task.start()
            return
        self._show_sample(project)

    def _show_sample(self, project: Project) -> None:
        self.set_project(project)
        self.save_project()
        self.go_to("Data")

    def save_project_as(self) -> None:
        """Save under a new name."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Save project as", str(Path.home() / f"project{SUFFIX}"), f"TL Studio projects (*{SUFFIX})"
        )
        if path:
            self.project.path = Path(_with_suffix(path))
            self.save_project()
            self.set_project(self.project)

    def recent_projects(self) -> list[str]:
        """Recently opened project files that still exist."""
        paths = self.qsettings.value("recent", []) or []
        if isinstance(paths, str):
            paths = [paths]
        return [p for p in paths if Path(p).is_file()]

    def _remember(self, path: str) -> None:
        paths = [path] + [p for p in self.recent_projects() if p != path]
        self.qsettings.setValue("recent", paths[:MAX_RECENT])
        self.start_page.show_recent(paths[:MAX_RECENT])


def _with_suffix(path: str) -> str:
    return path if path.endswith(SUFFIX) else path.removesuffix(".json") + SUFFIX
