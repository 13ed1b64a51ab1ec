"""A training session: data, model, the two-phase recipe, checkpoints, events, export.

``TrainingSession.run()`` blocks; call it from a worker thread to keep a GUI responsive. It reports
through ``on_event`` (plain dataclasses from ``events``) and stops within one batch when
``stop`` is set, keeping the best weights so far. Every run writes a run folder: settings,
manifest, history (per epoch and per batch), the best checkpoint, final metrics and the export.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core import atomic
from tlstudio.core import events as ev
from tlstudio.core.backbone.block_tokens import choose_probe_features
from tlstudio.core.backbone.classifier import TransferModel, classifier_for, set_batchnorm_momentum
from tlstudio.core.backbone.peft import PeftSummary
from tlstudio.core.backbone.registry import build_backbone, input_size_of, resolve_backbone
from tlstudio.core.data.labels_csv import data_root
from tlstudio.core.data.pipeline import LoadErrors, make_dataset
from tlstudio.core.data.split import Manifest
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import within_chance
from tlstudio.core.results.run_folder import RunFolderError, claim
from tlstudio.core.results.run_history import read_json
from tlstudio.core.settings import TrainSettings
from tlstudio.core.training import (
    devices,
    distribution,
    memory,
    multilabel_weights,
    phases,
    run_json,
    run_outcome,
    run_split,
)
from tlstudio.core.training import resume as resume_state
from tlstudio.core.training.callbacks import StopRequested
from tlstudio.core.training.devices import describe_device, make_strategy
from tlstudio.core.training.failures import (
    TrainingError,
    hint_for,
    message_for,
    need_free_space,
    weights_bytes,
)
from tlstudio.core.training.recipe import batchnorm_momentum, plan_recipe
from tlstudio.core.training.run_outcome import RunResult
from tlstudio.core.training.tensorboard_log import ScalarLog

__all__ = ["RunResult", "TrainingError", "TrainingSession", "describe_device"]


TOO_FEW = "too few images to spare one, so that split's figures say nothing about them (add images)"


class TrainingSession:
    """One training run over a data folder (see the module docstring)."""

    def __init__(
        self,
        settings: TrainSettings,
        data_dir: str | os.PathLike[str],
        run_dir: str | os.PathLike[str],
        *,
        manifest: Manifest | str | os.PathLike[str] | None = None,
        on_event: ev.EventCallback | None = None,
        stop: threading.Event | None = None,
        export: bool = True,
        score_test: bool = True,
        overwrite: bool = False,
        resume: bool = False,
    ):
        self.settings = settings
        self.overwrite = overwrite  # an existing run folder is emptied first (else it is refused)
        self.resume = resume  # continue the run in run_dir from its last finished epoch
        self.resume_state: resume_state.ResumeState | None = None
        self.started = time.time()
        self.data_source = Path(data_dir)  # a data folder, or a labels CSV (``labels_csv``)
        self.data_dir = data_root(data_dir)  # the folder the manifest's paths are relative to
        self.run_dir = Path(run_dir)
        self.manifest_source = manifest
        self.on_event = on_event
        self.stop = stop or threading.Event()
        self.export = export
        self.score_test = score_test  # False: the test split is left unseen (a sweep's trials)
        self.history: dict[str, Any] = {"epochs": [], "batches": []}  # (and "interpolation", "soup")
        self.checkpoint = self.run_dir / files.CHECKPOINTS / files.BEST_WEIGHTS
        self.best_epoch: int | None = None
        self.load_errors = LoadErrors()  # files dropped while training or evaluating, named in run.json
        self.skipped_at_split: list[dict[str, str]] = []  # files the scan found unusable
        self.model: TransferModel | None = None
        self.probe_features: tuple[str, str] | None = None  # (last or last4, why)
        self.manifest: Manifest | None = None  # set once the run has its split
        self.image_size: int | None = None
        self.strategy = None  # a tf.distribute strategy when one is used
        self.device_words = "CPU · float32"  # the device and precision in words, found once per run
        self.batch_halvings = 0  # times an auto batch size was halved after running out of memory
        self.primary = True  # records the run and exports (False: another worker of a multi-worker run)
        self.agreed_stop = threading.Event()  # multi-worker: set on every worker after the same step
        self.scalars = ScalarLog()
        self.small_folder: str | None = None  # why validation images train too, when the rule applied
        self.final_scores: dict[str, float] = {}  # validation scores of the final weights (WiSE-FT)
        self.thresholds: list[float] = []  # multi-label: per-label decision thresholds (validation)
        self.soup_candidates = None  # the fine-tune phase's best epochs (soup.SoupCandidates), while it runs
        self.soup: dict | None = None  # what the greedy soup did, for run.json (soup.SoupResult.to_dict)
        self.pos_weight: np.ndarray | None = None  # multi-label: each label's positive weight in the loss
        self.class_weights: dict[str, float] | None = None  # the weights used, by class (run.json)
        self.peft: PeftSummary | None = None  # what --peft did in the fine-tune phase, for run.json

    # -- reporting -------------------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        """Send an event to the listener, if any."""
        if self.on_event is not None:
            self.on_event(event)

    def log_scalars(self, epoch: int, values: dict[str, float]) -> None:
        """Per-epoch figures as TensorBoard event files in ``RUN/tensorboard`` (``ScalarLog``)."""
        if self.primary:
            self.scalars.write(self.run_dir / files.TENSORBOARD, epoch, values)

    def save_history(self) -> None:
        """Write history.json (atomically) so it survives a failure."""
        atomic.write_json(self.run_dir / files.HISTORY, self.history)

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Train, evaluate on the test split and export. Never raises for training errors."""
        started = time.time()
        policy = keras.config.dtype_policy()
        try:
            self.strategy = make_strategy(self.settings.strategy, self.stop)
        except Exception as err:  # e.g. a cluster that never met: nothing was written, nothing to record
            message = message_for(err)
            self.emit(ev.RunFailed(str(self.run_dir), message, hint_for(err), None))
            return RunResult("failed", self.run_dir, error=message, primary=False)
        if (refused := run_outcome.refused_before_claim(self)) is not None:  # before any folder is claimed
            return refused
        self._use_worker_folder()
        try:
            lock = claim(self.run_dir, overwrite=self.overwrite, resume=self.resume)
        except RunFolderError as err:  # someone else's folder: nothing is written into it
            self.emit(ev.RunFailed(str(self.run_dir), str(err), "choose another output folder", None))
            return RunResult("failed", self.run_dir, error=str(err), primary=False)
        self.started = started
        if self.resume and self.primary and (refused := resume_state.refuse_changed_files(self)) is not None:
            lock.release()
            return refused
        if self.resume:  # exports of the weights it had when it stopped would outlive them unmarked
            shutil.rmtree(self.run_dir / files.EXPORT, ignore_errors=True)
        tf.config.experimental.enable_op_determinism()  # same seed, same figures (process-wide, idempotent)
        try:
            devices.enable_memory_growth()  # (a no-op once the GPUs are initialised)
            s, gpus = self.settings, devices.list_gpus()
            devices.check_device(s.device, s.strategy, gpus)
            mixed, why = devices.use_mixed_precision(s.mixed_precision, s.device, s.strategy, gpus)
            self.device_words = f"{describe_device(s.device, gpus)} · {devices.precision_words(mixed, why)}"
            if mixed:
                keras.mixed_precision.set_dtype_policy("mixed_float16")
            result = memory.run_fitting_memory(self, started)
        except StopRequested:
            result = run_outcome.finish_stopped(self, started)
        except Exception as err:  # the run must report, not crash its thread
            result = run_outcome.finish_failed(self, err, started)
        finally:
            keras.config.set_dtype_policy(policy)
            lock.release()
        if distribution.is_multi_worker(self.strategy) and result.status != "failed":
            with contextlib.suppress(Exception):  # a chief that failed reports that itself
                distribution.barrier(self.strategy)
            if not self.primary:
                shutil.rmtree(self.run_dir, ignore_errors=True)
        return result

    def _use_worker_folder(self) -> None:
        """On a multi-worker run, only the chief writes the run folder; the others train in a
        temporary one (removed at the end, kept with error.txt if the worker fails)."""
        if not distribution.is_multi_worker(self.strategy) or distribution.is_chief(self.strategy):
            return
        self.primary = self.export = False
        name = distribution.task_name(self.strategy).replace(" ", "")
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"tlstudio-{name}-"))
        self.checkpoint = self.run_dir / files.CHECKPOINTS / files.BEST_WEIGHTS

    def run_once(self, started: float) -> RunResult:
        """One attempt at the whole run (``memory.run_fitting_memory`` may ask for another)."""
        s = self.settings
        keras.utils.set_random_seed(s.seed)  # head initialisation, dropout, augmentation
        if self.resume:
            self._load_resume_state()
        else:
            atomic.write_json(self.run_dir / files.SETTINGS, s.to_dict())
        manifest = run_split.run_manifest(self)
        classes = manifest.classes
        for split in ("val", "test"):  # the doctor warned; the run says it where it matters too
            if split == "val" and self.small_folder:  # emptied on purpose (run_split)
                continue
            if unseen := manifest.missing_classes(split):
                self.emit(
                    ev.RecipeChanged(f"no image of {', '.join(unseen)} in the {split} split: {TOO_FEW}")
                )
        if distribution.is_multi_worker(self.strategy):
            distribution.check_same_data(self.strategy, manifest.fingerprint())
        spec = resolve_backbone(s.backbone)
        with self.scope():
            backbone = build_backbone(spec, weights=s.weights, image_size=s.image_size, cut_at=s.cut_at)
        size = s.image_size or input_size_of(backbone) or spec.default_size
        if spec.brings_own_size and s.image_size and input_size_of(backbone) not in (None, s.image_size):
            raise TrainingError(
                f"{spec.source} takes {input_size_of(backbone)} px images, not {s.image_size}"
            )
        with self.scope():
            model = classifier_for(backbone, spec, s, len(classes), size, multi_label=manifest.multi_label)
        self.model, self.probe_features = model, choose_probe_features(s, spec)
        train, val, test = (manifest.subset(x) for x in ("train", "val", "test"))
        if not train:
            raise TrainingError("the training split is empty: add images or lower --val/--test")
        self.write_status("running", started, manifest, size)
        self.emit(
            ev.RunStarted(
                str(self.run_dir),
                self._device(),
                classes,
                len(train),
                len(val),
                len(test),
                size,
                s.backbone,
            )
        )
        self.manifest, self.image_size = manifest, size
        class_weight = multilabel_weights.choose_for_run(self, train)  # (multi-label: self.pos_weight)
        recipe = plan_recipe(s, len(train), probe_possible=self.strategy is None)
        if recipe.from_scratch:
            steps = math.ceil(len(train) / s.batch_size) * sum(p.epochs for p in recipe.phases)
            set_batchnorm_momentum(model, batchnorm_momentum(steps))
        phases.run_recipe(self, model, recipe, train, val, class_weight)
        return run_outcome.complete(self, model, started, "completed")

    def _load_resume_state(self) -> None:
        """The run's own manifest, history and position; refuses a run that cannot be continued."""
        state = resume_state.load(self.checkpoint.parent)
        if state is None:
            raise TrainingError(
                f"{self.run_dir} has no epoch to continue from: start it again with --overwrite"
            )
        self.resume_state = state
        self.manifest_source = self.run_dir / files.MANIFEST
        self.history = read_json(self.run_dir / files.HISTORY) or {"epochs": [], "batches": []}
        self.history["epochs"] = self.history["epochs"][: state.epoch + 1]
        self.history["batches"] = [b for b in self.history["batches"] if b["epoch"] <= state.epoch]
        recorded = read_json(self.run_dir / files.RUN_JSON)
        self.skipped_at_split = recorded.get("skipped_at_split", [])
        self.small_folder = recorded.get("small_folder")  # (its manifest has no validation left to move)

    def probe_found_nothing(self, train, classes) -> bool:
        """Whether the probe's cross-validated accuracy is within noise of chance."""
        record = self.history["epochs"][-1]
        accuracy = record.get("probe_cv_accuracy")
        if accuracy is None:
            return False
        counts = [sum(1 for e in train if e.label == c) for c in classes]
        return within_chance(accuracy, len(train), counts)

    def dataset(self, entries, split: str, *, training: bool = False, augment: bool = True):
        """One split's pipeline; on a multi-worker run, each worker's share of it."""
        s = self.settings
        args = self._dataset_args() | {
            "training": training,
            "augmentation": s.augmentation if training and augment else None,
            "cache": self._cache(split),
        }
        if not distribution.is_multi_worker(self.strategy):
            return make_dataset(entries, **args)
        return distribution.distribute(
            self.strategy,
            entries,
            s.batch_size,
            lambda share, batch_size: make_dataset(share, **(args | {"batch_size": batch_size})),
        )

    def features_dataset(self, entries, batch_size: int | None = None):
        """Pixels and labels in a fixed order, no augmentation, for the feature cache."""
        args = self._dataset_args() | ({"batch_size": batch_size} if batch_size else {})
        return make_dataset(entries, cache="none", **args)

    def feature_datasets(self, arrays: dict[str, tuple[np.ndarray, np.ndarray]]):
        """(train, val) datasets of cached features; val is None without a validation split."""
        s = self.settings
        x_train, y_train = arrays["train"]
        train_ds = (
            tf.data.Dataset.from_tensor_slices((x_train, y_train))
            .shuffle(len(y_train), seed=s.seed, reshuffle_each_iteration=True)
            .batch(s.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        val_ds = (
            tf.data.Dataset.from_tensor_slices(arrays["val"]).batch(s.batch_size) if "val" in arrays else None
        )
        return train_ds, val_ds

    def save_last(self, state: resume_state.ResumeState) -> None:
        """Where the run is (weights and position) for ``--resume``, after every epoch."""
        if not self.primary:
            return
        need_free_space(self.checkpoint.parent, weights_bytes(self.model) * 2 + 2**20, "a checkpoint")
        try:
            resume_state.save(self.checkpoint.parent, self.model, state)
        except OSError as err:
            raise TrainingError(f"could not write {self.checkpoint.parent}: {err.strerror or err}") from err

    def save_checkpoint(self, epoch: int | None, monitor: str, value: float) -> None:
        """Write the whole classifier's weights as the best checkpoint (atomically), after checking
        that the disk has room for it: a full disk must end the run with a message, not a crash."""
        need_free_space(self.checkpoint.parent, weights_bytes(self.model) * 2 + 2**20, "a checkpoint")
        try:
            with atomic.replacing(self.checkpoint) as tmp:
                self.model.save_weights(tmp)
        except OSError as err:
            raise TrainingError(
                f"could not write the checkpoint {self.checkpoint}: {err.strerror or err}"
            ) from err
        self.best_epoch = epoch
        if self.manifest is not None and self.primary:  # run.json names the checkpoint from now on
            self.write_status("running", self.started, self.manifest, self.image_size)
        self.emit(
            ev.CheckpointSaved(str(self.checkpoint), epoch if epoch is not None else -1, monitor, value)
        )

    def _device(self) -> str:
        return distribution.cluster_words(self.strategy, self.device_words, self.primary)

    def scope(self):
        """The distribution strategy's scope (variables are created and mirrored there), if any."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    # -- helpers ------------------------------------------------------------------------------------
    def _dataset_args(self) -> dict[str, object]:
        """What every split's pipeline shares."""
        return {
            "root": self.data_dir,
            "classes": self.manifest.classes,
            "image_size": self.image_size,
            "batch_size": self.settings.batch_size,
            "seed": self.settings.seed,
            "errors": self.load_errors,
            "multi_label": self.manifest.multi_label,
        }

    def _cache(self, split: str) -> str:
        if self.settings.cache in ("auto", "memory", "none"):
            return self.settings.cache
        return str(self.run_dir / "cache" / split)

    def write_status(self, status, started, manifest, size, *, metrics=None, message="") -> None:
        """Write ``run.json``: the run's state as it stands (``run_json.run_record``)."""
        atomic.write_json(
            self.run_dir / files.RUN_JSON,
            run_json.run_record(self, status, started, manifest, size, metrics, message),
        )
