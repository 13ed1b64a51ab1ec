"""A run's split: the manifest it was given, or one made from its data source (a folder or a labels CSV)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlstudio.core import events as ev
from tlstudio.core.data.labels_csv import LabelsCsvError
from tlstudio.core.data.split import Manifest, SplitConfig, make_split
from tlstudio.core.results import run_folder as files
from tlstudio.core.training import resume as resume_state
from tlstudio.core.training.failures import TrainingError
from tlstudio.core.training.small_folder import apply_small_folder_rule

if TYPE_CHECKING:
    from tlstudio.core.training.run_state import RunState


def run_manifest(session: RunState) -> Manifest:
    """The run's manifest, checked against the files and saved in the run folder.

    Args:
        session: the run (its ``manifest_source``, ``data_source`` and settings).

    Returns:
        The manifest (multi-label when the data is: ``DatasetReport.task``).

    Raises:
        TrainingError: unusable data, files gone, or fewer than two classes.
    """
    if isinstance(session.manifest_source, Manifest):
        manifest = session.manifest_source
    elif session.manifest_source is not None:
        manifest = Manifest.load(session.manifest_source)
    else:
        from tlstudio.core.data.source import inspect_data

        try:
            report = inspect_data(session.data_source)
        except LabelsCsvError as err:
            raise TrainingError(str(err)) from err
        if not report.usable:
            raise TrainingError(f"{session.data_dir} is not usable: {report.problem}")
        if report.skipped:  # named in run.json too, beside those skipped while training
            session.skipped_at_split = [{"path": x.path, "reason": x.reason} for x in report.skipped]
            session.emit(ev.FilesSkipped([(x.path, x.reason) for x in report.skipped]))
        config = SplitConfig.of(session.settings)
        manifest = make_split(report.images, config, multi_label=report.task == "multi_label")
    manifest, why = apply_small_folder_rule(manifest, session.settings)
    if why is not None:
        session.small_folder = why
        session.emit(ev.RecipeChanged(why))
    data = session.data_dir
    if not (check := resume_state.check_files(manifest, data, hashes=False)).ok:
        raise TrainingError(f"{check.describe(data)}: put them back, or make a new split")
    if len(manifest.classes) < 2:
        raise TrainingError("the manifest has fewer than two classes")
    manifest.save(session.run_dir / files.MANIFEST)
    return manifest
