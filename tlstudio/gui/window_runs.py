"""The main window's runs: starting one (checked first, then recorded in the project before its first
epoch), resuming one, the label check that needs the same things, and what the window does when a
run ends."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from tlstudio.core.data.split import SplitConfig, make_split
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_folder import run_status


class StartsRuns:
    """Mixin of ``MainWindow`` (its panels and project)."""

    def start_training(self, baseline: bool = False) -> None:
        """Check that data and backbone are set, then run in the Train panel (``baseline``: the same
        settings from random weights, every layer trained, the same epoch budget)."""
        if self.train.is_running():
            return
        problems = self.missing_steps()
        report = self.state.report
        if not problems and not all((Path(report.root) / r.path).is_file() for r in report.images):
            self.data.load(str(report.source))  # files moved since the scan: scan again first
            problems.append("wait for the data folder's new scan (files changed since it was scanned)")
        if problems:
            QMessageBox.information(self, "Not ready to train", "First " + " and ".join(problems) + ".")
            return
        settings = self.current_settings()
        self.project.settings = settings
        if baseline:
            from tlstudio.core.training.comparison import baseline_settings

            settings = baseline_settings(settings)
        run_dir = self.project.new_run_dir()
        self.save_project()
        self.go_to("Train")
        # The split of the report on screen, kept beside the project: no second scan while training.
        multi = getattr(report, "task", "") == "multi_label"  # (the data says it: a labels CSV)
        manifest = make_split(report.images, SplitConfig.of(settings), multi_label=multi)
        if self.project.manifest_path is not None:
            manifest.save(self.project.manifest_path)
        self.state.run_started(run_dir)  # in the project file before its first epoch: a crash keeps it
        self.state.set_task("baseline training" if baseline else "training")
        self.train.run(settings, report.source, run_dir, manifest)

    def missing_steps(self) -> list[str]:
        """What a run still needs, in the words the Train panel shows (the state's)."""
        return self.state.missing_steps()

    def resume_run(self, record) -> None:
        """Continue an interrupted run of the project in its own folder, with its own settings."""
        if self.train.is_running():
            return
        data_dir = run_status(record.run_dir).get("data_dir") or self.project.data_dir
        if not data_dir or not Path(data_dir).is_dir():
            QMessageBox.information(
                self,
                "Cannot resume",
                f"The run's data folder {data_dir or '(not recorded)'} is not there: put it back, or "
                f"resume from a terminal with: tlstudio train DATA_DIR --resume {record.run_dir}",
            )
            return
        if not record.settings:
            QMessageBox.information(
                self, "Cannot resume", f"{record.run_dir} has no settings.json: it stopped before it began."
            )
            return
        self.go_to("Train")
        self.state.run_started(record.run_dir)
        self.state.set_task(f"resuming {record.name}")
        self.train.run(record.train_settings(), data_dir, record.run_dir, None, resume=True)

    def _check_labels(self) -> None:
        """The Data panel's label check: the project's backbone judges the scanned images."""
        problems = self.missing_steps()
        if problems or self.state.report is None:
            QMessageBox.information(
                self, "Not ready to check labels", "First " + " and ".join(problems) + "."
            )
            return
        self.data.label_issues.run_check(self.state.report, self.current_settings())

    def _training_finished(self, result) -> None:
        # (a run refused before it claimed a folder left nothing to record: it leaves the project)
        self.save_project()
        self.state.run_ended(result.run_dir, result.status, result.metrics, recorded=result.primary)
        if self.state.task == "quick model" and result.primary:  # the project takes what it chose
            from tlstudio.core.results.run_history import load_run

            record = load_run(result.run_dir)
            if record.settings:
                self.project.settings = record.train_settings()
                for panel in self.setting_panels():
                    panel.show_settings(self.project.settings)
                self.save_project()
        if result.status == "failed":  # not modal: the window stays usable (and testable)
            self.error_box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Training failed",
                result.error + kept_words(result.run_dir),
                parent=self,
            )
            self.error_box.setModal(False)
            self.error_box.show()


def kept_words(run_dir) -> str:
    """What a failed run left, in words for its failure box."""
    checkpoint = Path(run_dir) / files.CHECKPOINTS / files.BEST_WEIGHTS
    if checkpoint.is_file():
        return f"\n\nThe best checkpoint so far is kept in {checkpoint}."
    if not Path(run_dir).exists():
        return "\n\nNo run folder was made: nothing was trained."
    return ""
