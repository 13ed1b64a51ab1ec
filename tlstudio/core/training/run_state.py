"""The written contract between a training run and the modules that do its parts.

``TrainingSession`` (``session.py``) owns a run; the phases (``phases``), the Keras callbacks
(``callbacks``), the out-of-memory retry (``memory``), the end of a run (``run_outcome``,
``multilabel_outcome``, ``multilabel_calibration``), the split (``run_split``), ``run.json``
(``run_json``), resuming (``resume``), the soup, the class weights and distillation each take the run
as a ``RunState`` and use nothing of it that is not named here. They import this module, never
``session``: the session uses them, they do not use the session's class, so the training room has
no circle, and a change to the session that breaks what a part relies on fails the type checker
(``tests/test_types.py`` checks that ``TrainingSession`` is a ``RunState``).

What a part may **read**: the inputs (settings, folders, the manifest's source, the stop token, the
strategy) and the run's records; what it may **write** is marked in each attribute's comment.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tlstudio.core import events as ev
from tlstudio.core.settings import TrainSettings

if TYPE_CHECKING:  # (type names only: these modules take a RunState themselves)
    from tlstudio.core.backbone.classifier import TransferModel
    from tlstudio.core.backbone.peft import PeftSummary
    from tlstudio.core.data.pipeline import LoadErrors
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.training.resume import ResumeState
    from tlstudio.core.training.run_outcome import RunResult
    from tlstudio.core.training.tensorboard_log import ScalarLog


class RunState(Protocol):
    """One run as its parts see it (see the module docstring)."""

    # -- inputs: set when the run is made, read by every part --------------------------------------
    settings: TrainSettings
    data_source: Path  # the data folder or labels CSV the user named
    data_dir: Path  # the folder the manifest's paths are relative to
    run_dir: Path  # the run folder (a worker of a multi-worker run: a temporary one)
    manifest_source: Any  # a Manifest, a manifest file, or None: make the split (run_split)
    on_event: ev.EventCallback | None
    stop: threading.Event  # the stop token (core.cancel): set to stop after the current batch
    export: bool  # export at the end (False: a sweep's trial, a multi-worker's other workers)
    score_test: bool  # False: the test split stays unseen
    resume: bool
    resume_state: ResumeState | None  # where a resumed run continues (resume)
    started: float
    strategy: Any  # a tf.distribute strategy, or None
    primary: bool  # this process records the run and exports
    agreed_stop: threading.Event  # multi-worker: set on every worker after the same step
    device_words: str

    # -- what the run learns as it goes: written by the part named --------------------------------
    manifest: Manifest | None  # run_split, once the split is made
    image_size: int | None  # the session, with the manifest
    model: TransferModel | None  # the session builds it; phases train it
    probe_features: tuple[str, str] | None  # (last or last4, why): the session
    history: dict[str, Any]  # every part appends its epochs, batches, interpolation, soup
    checkpoint: Path  # the best weights' file: save_checkpoint writes it
    best_epoch: int | None  # save_checkpoint
    final_scores: dict[str, float]  # phases (WiSE-FT's choice), run_outcome
    load_errors: LoadErrors  # the pipeline: files dropped while training or evaluating
    skipped_at_split: list[dict[str, str]]  # run_split: files the scan found unusable
    small_folder: str | None  # run_split: why validation images train too
    batch_halvings: int  # memory: times an auto batch size was halved
    thresholds: list[float]  # multilabel_outcome: per-label decision thresholds
    soup_candidates: Any  # phases: the fine-tune phase's best epochs (soup.SoupCandidates)
    soup: dict[str, Any] | None  # phases: what the greedy soup did
    pos_weight: np.ndarray | None  # multilabel_weights: each label's positive weight
    class_weights: dict[str, float] | None  # the weights used, by class
    peft: PeftSummary | None  # phases: what --peft did
    scalars: ScalarLog

    # -- what the session does for its parts --------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        """Send an event to the listener, if any."""
        ...

    def log_scalars(self, epoch: int, values: dict[str, float]) -> None:
        """Per-epoch figures for TensorBoard."""
        ...

    def save_history(self) -> None:
        """Write history.json (atomically)."""
        ...

    def save_checkpoint(self, epoch: int | None, monitor: str, value: float) -> None:
        """Write the model's weights as the best checkpoint; sets ``best_epoch``."""
        ...

    def save_last(self, state: ResumeState) -> None:
        """Where the run is, for ``--resume``."""
        ...

    def write_status(
        self, status: Any, started: Any, manifest: Any, size: Any, *, metrics: Any = None, message: str = ""
    ) -> None:
        """Write ``run.json`` as the run stands."""
        ...

    def run_once(self, started: float) -> RunResult:
        """One attempt at the whole run (memory retries it at a smaller batch)."""
        ...

    def probe_found_nothing(self, train: Any, classes: Any) -> bool:
        """Whether the probe scored within noise of chance."""
        ...

    def dataset(self, entries: Any, split: str, *, training: bool = False, augment: bool = True) -> Any:
        """One split's tf.data pipeline."""
        ...

    def features_dataset(self, entries: Any, batch_size: int | None = None) -> Any:
        """Pixels and labels in a fixed order, for the feature cache."""
        ...

    def feature_datasets(self, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> Any:
        """(train, val) datasets of cached features."""
        ...

    def scope(self) -> AbstractContextManager[Any]:
        """The distribution strategy's scope, if any."""
        ...
