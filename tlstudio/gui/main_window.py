"""The main window: a start page, then the workflow as panels (Data, Backbone, Layers, Train, Export).

The window holds the app's one state (``gui.state.AppState``: the project, its data report, the
backbone, the freeze plan, the selected run) and hands it to the panels, which follow it; New and Open
replace it whole. It autosaves the project file shortly after every change, so a crash or a kill loses
nothing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QStyle,
    QWidget,
)

from tlstudio.core.project import Project
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_history import latest_restorable_run
from tlstudio.gui.backbone_panel import BackbonePanel
from tlstudio.gui.data_panel import DataPanel
from tlstudio.gui.evaluate_panel import EvaluatePanel
from tlstudio.gui.experiments_view import open_experiments
from tlstudio.gui.export_panel import ExportPanel
from tlstudio.gui.help_menu import add_help_menu
from tlstudio.gui.layers_panel import LayersPanel
from tlstudio.gui.project_files import ProjectFiles
from tlstudio.gui.start_page import StartPage
from tlstudio.gui.state import AppState
from tlstudio.gui.tf_loader import load_tensorflow
from tlstudio.gui.theme import THEMES, apply_theme
from tlstudio.gui.train_panel import TrainPanel
from tlstudio.gui.try_panel import TryPanel
from tlstudio.gui.window_closing import ClosesSafely
from tlstudio.gui.window_runs import StartsRuns
from tlstudio.gui.worker import Task, failure_line
from tlstudio.report_text import counted

STEPS = (  # the workflow, in order, each with one of Qt's standard icons (they follow the theme)
    ("Start", "SP_DirHomeIcon"),
    ("Data", "SP_DirOpenIcon"),
    ("Backbone", "SP_ComputerIcon"),
    ("Layers", "SP_FileDialogListView"),
    ("Train", "SP_MediaPlay"),
    ("Evaluate", "SP_FileDialogInfoView"),
    ("Try it", "SP_MediaSeekForward"),
    ("Export", "SP_DialogSaveButton"),
)
PANELS = tuple(name for name, _ in STEPS)
LOADER_FALLBACK_MS = 1000  # TensorFlow loads after the first paint, or after this


class MainWindow(ProjectFiles, StartsRuns, ClosesSafely, QMainWindow):
    """Wires the panels to a project."""

    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.qsettings = settings or QSettings()
        self.state = AppState()
        self.setWindowTitle("TL Studio")
        self.start_page = StartPage(self)
        self.data = DataPanel(state=self.state)
        self.backbone = BackbonePanel(state=self.state)
        self.layers = LayersPanel()
        self.train = TrainPanel()
        self.export = ExportPanel(state=self.state)
        self.evaluate = EvaluatePanel(state=self.state)
        self.try_it = TryPanel(state=self.state)
        self.nav = QListWidget()
        self.nav.setObjectName("steps")
        self.nav.setFixedWidth(150)
        self.stack = QStackedWidget()
        panels = (
            self.start_page,
            self.data,
            self.backbone,
            self.layers,
            self.train,
            self.evaluate,
            self.try_it,
            self.export,
        )
        for (name, icon), panel in zip(STEPS, panels, strict=True):
            pixmap = self.style().standardIcon(getattr(QStyle.StandardPixmap, icon))
            self.nav.addItem(QListWidgetItem(pixmap, name))
            self.stack.addWidget(panel)
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.tf_status = QLabel("TensorFlow: loading in the background…")
        self.statusBar().addPermanentWidget(self.tf_status)
        self.loader: Task | None = None
        self.sample_task: Task | None = None

        self._autosave = QTimer(self, singleShot=True, interval=400)
        self._autosave.timeout.connect(self.save_project)
        self.data.split_changed.connect(self._settings_changed)
        self.backbone.chosen.connect(self._backbone_chosen)
        self.layers.plan_changed.connect(self._plan_changed)
        self.train.start_requested.connect(self.start_training)
        self.train.finished.connect(self._training_finished)
        self.train.ended.connect(self._run_thread_ended)
        self.evaluate.baseline_requested.connect(lambda: self.start_training(baseline=True))
        self.evaluate.clone_requested.connect(self.clone_settings)
        self.evaluate.data_changed.connect(self._rescan_data)
        self.try_it.data_changed.connect(self._rescan_data)
        self.data.label_issues.data_changed.connect(self._rescan_data)
        self.data.label_issues.kept_changed.connect(self._labels_kept)
        self.data.label_issues.check_requested.connect(self._check_labels)
        self.data.label_next.data_changed.connect(self._rescan_data)
        self.data.label_next.latest_run = self.run_for_suggestions
        self.backbone.rank.report_source = lambda: self.state.report
        self.backbone.rank.waiting_for = lambda: self._tensorflow_missing("rank")
        self.data.label_next.waiting_for = lambda: self._tensorflow_missing("suggest")
        lr_find = self.train.form.lr_find
        lr_find.report_source = lambda: self.state.report
        lr_find.waiting_for = lambda: self._tensorflow_missing("lr-find")
        lr_find.settings_source = self.current_settings
        self.evaluate.resume_requested.connect(self.resume_run)
        self.state.subscribe("project", self._project_replaced)
        self.state.subscribe("task", self._show_title)
        self.state.subscribe("data", self._data_changed)
        for aspect in ("project", "data", "backbone", "plan", "runs", "selected_run"):
            self.state.subscribe(aspect, self.update_steps)
        self._shown_data_dir: str | None = None  # the folder the label views were given
        self._make_menus()
        self.start_page.show_recent(self.recent_projects())
        self.update_steps()  # a fresh window: nothing done yet, and the Train panel says what is missing
        self.go_to("Start")
        geometry = self.qsettings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:  # 1280×800, or less where the screen is smaller (a 1366×768 laptop)
            screen = self.screen().availableGeometry()
            self.resize(min(1280, screen.width()), min(800, screen.height()))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(LOADER_FALLBACK_MS, self._load_tensorflow)  # in case no paint event comes

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.loader is None:  # the window is on screen: now TensorFlow may take the GIL
            QTimer.singleShot(0, self._load_tensorflow)

    def _load_tensorflow(self) -> None:
        """Load TensorFlow in a worker, once, after the first paint: its import holds the GIL for
        long stretches, and started at ``show`` it delayed the first paint from 0.5 s to 1.4 s."""
        if self.loader is not None:
            return
        self.loader = Task(load_tensorflow)
        self.loader.done.connect(self._tensorflow_ready)
        self.loader.failed.connect(
            lambda msg: self.tf_status.setText("TensorFlow failed to load: " + failure_line(msg))
        )
        self.loader.start()

    @property
    def project(self) -> Project:
        """The project shown (the state's)."""
        return self.state.project

    def _tensorflow_missing(self, action: str) -> str:
        """Why ``action`` cannot start yet ("" once TensorFlow is loaded)."""
        return (
            ""
            if self.state.tensorflow_ready and self.backbone.ready
            else f"TensorFlow is still loading (status bar): {action} again in a moment."
        )

    def _tensorflow_ready(self, loaded) -> None:
        device, specs, gpus = loaded
        self.state.set_tensorflow_ready()
        self.tf_status.setText(f"TensorFlow ready · {device}")
        self.tf_status.setToolTip("\n".join(words for _, words in gpus) or "no GPU: training runs on the CPU")
        self.train.device.setText(f"Device: {device}")
        self.train.form.set_devices(gpus)
        self.backbone.populate(specs)

    # -- menus -------------------------------------------------------------------------------------
    def _make_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, key, slot in (
            ("&New project…", QKeySequence.StandardKey.New, self.new_project),
            ("&Open project…", QKeySequence.StandardKey.Open, lambda: self.open_project()),
            ("&Save", QKeySequence.StandardKey.Save, self.save_project),
            ("Save &as…", QKeySequence.StandardKey.SaveAs, self.save_project_as),
            ("&Quit", QKeySequence.StandardKey.Quit, self.close),
        ):
            action = QAction(text, self, shortcut=QKeySequence(key))
            action.triggered.connect(slot)
            file_menu.addAction(action)
        go = self.menuBar().addMenu("&Go")
        for row, name in enumerate(PANELS):
            action = QAction(name, self, shortcut=QKeySequence(f"Alt+{row}"))
            action.triggered.connect(lambda _=False, r=row: self.nav.setCurrentRow(r))
            go.addAction(action)
        view = self.menuBar().addMenu("&View")
        themes = QActionGroup(self)
        chosen = str(self.qsettings.value("view/theme", "system"))
        for name in THEMES:
            action = QAction(f"{name.capitalize()} theme", self, checkable=True, checked=name == chosen)
            action.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            themes.addAction(action)
            view.addAction(action)
        run = self.menuBar().addMenu("&Training")
        for text, key, slot in (
            ("Start", "Ctrl+Return", lambda: self.start_training()),
            ("Stop", "Ctrl+.", self.train.request_stop),
        ):
            action = QAction(text, self, shortcut=QKeySequence(key))
            action.triggered.connect(slot)
            run.addAction(action)
        run.addAction("Experiments (a sweep's folder)…", lambda: open_experiments(self))
        add_help_menu(self)

    def set_project(self, project: Project) -> None:
        """Show a project: the state is replaced whole, so nothing of the previous one stays."""
        self._autosave.stop()  # (a pending save belongs to the project being left)
        self.state.replace_project(project)

    def _project_replaced(self) -> None:
        """Every panel shows the state's new project (the panels that follow the state have already
        dropped the previous one)."""
        project = self.project
        self._show_title()
        for panel in (self.layers, self.train, self.train.form.lr_find):
            panel.reset()
        self._show_data_folder()
        s = project.settings
        for panel in self.setting_panels():
            panel.show_settings(s)
        if project.data_dir:
            self.data.load(project.data_dir)
        if project.path is not None:
            self._remember(str(project.path))
        stopped = [r.name for r in self.state.runs if r.status == "interrupted"]
        if stopped:
            self.statusBar().showMessage(
                f"{len(stopped)} run(s) were interrupted ({', '.join(stopped)}): "
                "select one in Evaluate and press Resume to continue it",
                15000,
            )

    def _run_thread_ended(self) -> None:
        """A run's thread ended (with a result or a crash): no task in flight; a run that never made
        its folder (refused, or a Quick model refused by the doctor) leaves the project."""
        self.state.set_task(None)
        run = self.train.run_dir
        if run is not None and not run.exists():
            self.project.forget_run(run)
            self.save_project()
            self.state.runs_changed()

    def _show_title(self) -> None:
        """The project's name, and the long job in flight."""
        task = f" ({self.state.task}…)" if self.state.task else ""
        self.setWindowTitle(f"TL Studio — {self.project.name}{task}")

    def _data_changed(self) -> None:
        """The data folder or its report changed: a folder of its own drops what the label views
        showed of the last one; the project file follows."""
        if self.project.data_dir != self._shown_data_dir:
            self._show_data_folder()
            self.backbone.rank.reset()
        if self.state.report is not None:
            images, classes = len(self.state.report.images), len(self.state.report.classes)
            kind = "label" if self.state.report.task == "multi_label" else "class"
            self.statusBar().showMessage(f"{counted(images, 'image')}, {counted(classes, kind)}", 5000)
        self._settings_changed()

    def _show_data_folder(self) -> None:
        """Give the label views the project's data folder (nothing of another folder stays)."""
        project = self.project
        self._shown_data_dir = project.data_dir
        folder = Path(project.data_dir) if project.data_dir else None
        self.data.label_issues.stop()
        self.data.label_issues.set_data(folder, project.manifest_path, project.kept_labels)
        self.data.label_next.set_data(folder)

    def show_runs(self) -> None:
        """Run folders changed (a run ended, was resumed): every panel reads them again."""
        self.state.runs_changed()

    def run_for_suggestions(self) -> Path | None:
        """The run Label next asks: the selected run when it has a best checkpoint, else the newest
        that has one."""
        chosen = self.state.selected_run
        if chosen is not None and (chosen / files.CHECKPOINTS / files.BEST_WEIGHTS).is_file():
            return chosen
        return latest_restorable_run(self.project.runs)

    def clone_settings(self, settings) -> None:
        """Take a past run's settings as the current ones, then go to the Train panel."""
        self.project.settings = settings
        self.set_project(self.project)
        self.save_project()
        self.go_to("Train")

    def save_project(self) -> None:
        """Write the project file now (no-op for an unsaved project)."""
        if self.project.path is not None:
            self.project.settings = self.current_settings()
            self.project.save()

    def set_theme(self, name: str) -> None:
        """Light, dark, or the system's (kept for the next start)."""
        self.qsettings.setValue("view/theme", name)
        apply_theme(QApplication.instance(), name)

    # -- settings from the panels ------------------------------------------------------------------
    def current_settings(self):
        """The project's TrainSettings with every panel's values."""
        s = self.project.settings
        for panel in self.setting_panels():
            s = panel.apply_to(s)
        return s

    def setting_panels(self) -> tuple:
        """The panels that show and edit settings (each has ``show_settings`` and ``apply_to``)."""
        return (self.data, self.backbone, self.layers, self.train)

    def _settings_changed(self) -> None:
        self._autosave.start()

    def _backbone_chosen(self, spec, weights: str, image_size: int) -> None:
        plan = (
            self.project.settings.freeze
            if self.project.settings.backbone == (spec.source or spec.name)
            else None
        )
        self.layers.show_backbone(spec, image_size, plan)
        self._settings_changed()

    def _plan_changed(self, plan, head) -> None:
        self.train.show_plan(plan)
        self.state.set_plan(plan if self.layers.model.choice is not None else None)
        self._settings_changed()

    def go_to(self, step: str) -> None:
        """Show a step's panel (a name of ``PANELS``)."""
        self.nav.setCurrentRow(PANELS.index(step))

    def update_steps(self) -> None:
        """Tick the steps done in the list on the left; tell the Train panel what is missing."""
        done = self.state.steps_done()
        for row, name in enumerate(PANELS):
            item = self.nav.item(row)
            item.setText(f"{name}  ✓" if done.get(name) else name)
            item.setToolTip("done" if done.get(name) else "")
        missing = self.missing_steps()
        self.nav.item(PANELS.index("Train")).setToolTip("; ".join(missing) if missing else "ready to train")
        self.train.set_missing(missing)

    def _rescan_data(self) -> None:
        """A relabel moved a file: the next run must train on the folder as it is now."""
        if self.state.report is not None:
            self.data.load(str(self.state.report.source))

    def _labels_kept(self, paths: list[str]) -> None:
        self.project.kept_labels = list(paths)
        self.save_project()

    # -- closing -----------------------------------------------------------------------------------
