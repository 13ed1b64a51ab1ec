"""*Start worker(s)* of the Experiments view: the data, the study (a new one from the project, or one
joined by its storage URL and name), the trials and how many workers run here, on which devices."""

from __future__ import annotations

import shlex
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
)

from tlstudio.core.settings import SWEEP_STUDY, SWEEP_TRIALS, TrainSettings
from tlstudio.core.studies.workers import DEVICES, WorkerPlan, plan_problem


class StartWorkersDialog(QDialog):
    """The form; ``plan()`` is what OK accepted (it stays open, saying why, while the plan is bad)."""

    def __init__(
        self,
        out: Path,
        data_dir: str | None = None,
        settings: TrainSettings | None = None,
        study: str = "",
        parent=None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Start sweep workers on this machine")
        self.setMinimumWidth(640)  # the fields' placeholders say what an empty field means: room to read them
        self.out, self.settings = out, settings
        self.data = QLineEdit(data_dir or "")
        self.study = QLineEdit(study or SWEEP_STUDY)
        self.storage = QLineEdit()
        self.storage.setPlaceholderText("empty: SQLite in this sweep's folder (this machine only)")
        self.backbones = QLineEdit(settings.backbone if settings is not None else "")
        self.backbones.setPlaceholderText("A,B,… (empty: the study's, or those rank cannot tell apart)")
        self.use_project = QCheckBox("Train every trial with the project's settings")
        self.use_project.setChecked(settings is not None)
        self.use_project.setEnabled(settings is not None)
        self.space = QLineEdit()
        self.space.setPlaceholderText("a search-space JSON file (empty: the default space)")
        self.trials = QSpinBox(minimum=1, maximum=100_000, value=SWEEP_TRIALS)
        self.workers = QSpinBox(minimum=1, maximum=64, value=1)
        self.devices = QComboBox()
        self.devices.addItems(DEVICES)
        self.options = QLineEdit()
        self.options.setPlaceholderText("more `tlstudio sweep` options, e.g. --objective loss --heartbeat 10")
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #b00020")
        self.problem.setWordWrap(True)
        form = QFormLayout()
        for label, widget in (
            ("Data folder", self.data),
            ("Study name", self.study),
            ("Storage URL", self.storage),
            ("Backbones", self.backbones),
            ("", self.use_project),
            ("Search space", self.space),
            ("Trials (whole study)", self.trials),
            ("Workers here", self.workers),
            ("Devices", self.devices),
            ("More options", self.options),
        ):
            form.addRow(label, widget)
        hint = QLabel(
            "A study of this name already in the storage is joined: give the settings, space and number "
            "of trials its first workers had. Otherwise a new study starts. With several GPUs, choose "
            "'one GPU each' (worker i: --device gpu:i)."
        )
        hint.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for widget in (hint, self.problem, self.buttons):
            layout.addWidget(widget)

    def plan(self) -> WorkerPlan:
        """The form as a plan (ValueError: the extra options cannot be split into arguments).

        Returns:
            What ``core.studies.workers.worker_commands`` turns into command lines.
        """
        try:
            options = tuple(shlex.split(self.options.text()))
        except ValueError as err:
            raise ValueError(f"more options: {err}") from None
        names = tuple(n.strip() for n in self.backbones.text().split(",") if n.strip())
        return WorkerPlan(
            data_dir=Path(self.data.text().strip()).expanduser(),
            out=self.out,
            trials=self.trials.value(),
            workers=self.workers.value(),
            study=self.study.text().strip(),
            storage=self.storage.text().strip() or None,
            backbones=names,
            settings=self.settings if self.use_project.isChecked() else None,
            space=Path(self.space.text().strip()).expanduser() if self.space.text().strip() else None,
            devices=DEVICES[self.devices.currentIndex()],
            options=options,
        )

    def accept(self) -> None:
        """Close only with a plan that can start (else say why, in one line)."""
        try:
            problem = plan_problem(self.plan())
        except ValueError as err:
            problem = str(err)
        if problem:
            self.problem.setText(problem)
            return
        super().accept()
