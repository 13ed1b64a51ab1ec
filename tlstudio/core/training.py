"""A training session: data, model, the two-phase recipe, checkpoints, events, export.

``TrainingSession.run()`` blocks; call it from a worker thread to keep a GUI responsive. It reports
through ``on_event`` (plain dataclasses from ``events``) and stops within one batch when
``stop_event`` is set, keeping the best weights so far. Every run writes a run folder: settings,
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
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core import atomic, multi_worker
from tlstudio.core import events as ev
from tlstudio.core.backbones import BackboneError, build_backbone, input_size_of, resolve_backbone
from tlstudio.core.dataset import in_folder
from tlstudio.core.freezing import FreezePlan, apply_freeze_plan, variable_multipliers
from tlstudio.core.health import IMBALANCE_WARNING_RATIO, balanced_class_weights, inspect_folder
from tlstudio.core.model import TransferModel, apply_chain, build_classifier
from tlstudio.core.pipeline import LoadErrors, make_dataset
from tlstudio.core.settings import TrainSettings, make_optimizer
from tlstudio.core.split import Manifest, SplitConfig, make_split

CHECKPOINT_NAME = "best.weights.h5"


class StopRequested(Exception):
    """Raised inside ``fit`` to end training at once when a stop was asked for."""


class TrainingError(Exception):
    """A run that cannot start, with a message that says what to do."""


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # "completed", "stopped" or "failed"
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    export_dir: Path | None = None
    error: str | None = None
    model: keras.Model | None = None
    primary: bool = True  # False: nothing to record (another worker of a cluster, or no start)


def describe_device() -> str:
    """The device training will use, in words."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    except (RuntimeError, ValueError):
        name = "GPU"
    return f"GPU: {name}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else "")


class EventBridge(keras.callbacks.Callback):
    """Turns Keras hooks into TL Studio events and checks the stop flag after every batch."""

    def __init__(
        self, session: TrainingSession, phase: str, steps: int, batch_size: int, stop: threading.Event
    ):
        super().__init__()
        self.session, self.phase, self.steps, self.batch_size = session, phase, steps, batch_size
        self.stop = stop
        self._epoch = 0
        self._epoch_start = self._last = time.perf_counter()
        self._rate = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        rate = self.batch_size / max(now - self._last, 1e-9)
        self._rate = rate if self._rate == 0 else 0.8 * self._rate + 0.2 * rate
        self._last = now
        record = {
            "phase": self.phase,
            "epoch": self._epoch,
            "step": batch + 1,
            "loss": float(logs.get("loss", math.nan)),
        }
        if "accuracy" in logs:
            record["accuracy"] = float(logs["accuracy"])
        self.session.history["batches"].append(record)
        self.session.emit(
            ev.BatchEnded(
                self.phase,
                self._epoch,
                batch + 1,
                self.steps,
                record["loss"],
                record.get("accuracy"),
                self._rate,
            )
        )
        if self.stop.is_set():
            raise StopRequested()

    def on_epoch_end(self, epoch, logs=None):
        metrics = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        seconds = time.perf_counter() - self._epoch_start
        self.session.history["epochs"].append(
            {"phase": self.phase, "epoch": epoch, **metrics, "learning_rate": lr, "seconds": seconds}
        )
        self.session.save_history()
        self.session.emit(ev.EpochEnded(self.phase, epoch, metrics, lr, seconds))


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the weights whenever the monitored value improves, atomically (temp file + rename).

    Written by hand rather than with ``ModelCheckpoint`` so that a crash mid-write never leaves a
    broken file in place of the last good checkpoint.
    """

    def __init__(self, session: TrainingSession, path: Path, monitor: str, best: float = math.inf):
        super().__init__()
        self.session, self.path, self.monitor, self.best = session, path, monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value < self.best:
            return
        self.best = float(value)
        with atomic.replacing(self.path) as tmp:
            self.session.model.save_weights(tmp)  # the whole classifier, also while a head-only model trains
        self.session.best_epoch = epoch
        self.session.emit(ev.CheckpointSaved(str(self.path), epoch, self.monitor, self.best))


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
        stop_event: threading.Event | None = None,
        export: bool = True,
    ):
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.run_dir = Path(run_dir)
        self.manifest_source = manifest
        self.on_event = on_event
        self.stop_event = stop_event or threading.Event()
        self.export = export
        self.history: dict[str, list] = {"epochs": [], "batches": []}
        self.checkpoint = self.run_dir / "checkpoints" / CHECKPOINT_NAME
        self.best_epoch: int | None = None
        self.load_errors = LoadErrors()
        self.model: TransferModel | None = None
        self.manifest: Manifest | None = None  # set once the run has its split
        self.image_size: int | None = None
        self.strategy = None  # a tf.distribute strategy when one is used
        self.primary = True  # records the run and exports (False: another worker of a multi-worker run)
        self.agreed_stop = threading.Event()  # multi-worker: set on every worker after the same step

    # -- reporting -------------------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        """Send an event to the listener, if any."""
        if self.on_event is not None:
            self.on_event(event)

    def save_history(self) -> None:
        """Write history.json (atomically) so it survives a failure."""
        atomic.write_json(self.run_dir / "history.json", self.history)

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Train, evaluate on the test split and export. Never raises for training errors."""
        started = time.time()
        policy = keras.config.dtype_policy()
        try:
            self.strategy = make_strategy(self.settings.strategy, self.stop_event)
        except Exception as err:  # e.g. a cluster that never met: nothing was written, nothing to record
            message = _message_for(err)
            self.emit(ev.RunFailed(str(self.run_dir), message, _hint_for(err), None))
            return RunResult("failed", self.run_dir, error=message, primary=False)
        self._use_worker_folder()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.settings.mixed_precision:
                keras.mixed_precision.set_dtype_policy("mixed_float16")
            result = self._run(started)
        except StopRequested:
            result = self._finish_stopped(started)
        except Exception as err:  # the run must report, not crash its thread
            result = self._finish_failed(err, started)
        finally:
            keras.config.set_dtype_policy(policy)
        if multi_worker.is_multi_worker(self.strategy) and result.status != "failed":
            with contextlib.suppress(Exception):  # a chief that failed reports that itself
                multi_worker.barrier(self.strategy)
            if not self.primary:
                shutil.rmtree(self.run_dir, ignore_errors=True)
        return result

    def _use_worker_folder(self) -> None:
        """On a multi-worker run, only the chief writes the run folder; the others train in a
        temporary one (removed at the end, kept with error.txt if the worker fails)."""
        if not multi_worker.is_multi_worker(self.strategy) or multi_worker.is_chief(self.strategy):
            return
        self.primary = self.export = False
        name = multi_worker.task_name(self.strategy).replace(" ", "")
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"tlstudio-{name}-"))
        self.checkpoint = self.run_dir / "checkpoints" / CHECKPOINT_NAME

    def _run(self, started: float) -> RunResult:
        s = self.settings
        keras.utils.set_random_seed(s.seed)  # head initialisation, dropout, augmentation
        atomic.write_json(self.run_dir / "settings.json", s.to_dict())
        manifest = self._manifest()
        classes = manifest.classes
        if multi_worker.is_multi_worker(self.strategy):
            multi_worker.check_same_data(self.strategy, manifest.fingerprint())
        spec = resolve_backbone(s.backbone)
        with self._scope():
            backbone = build_backbone(spec, weights=s.weights, image_size=s.image_size, cut_at=s.cut_at)
        size = s.image_size or input_size_of(backbone) or spec.default_size
        if spec.kind == "file" and s.image_size and input_size_of(backbone) not in (None, s.image_size):
            raise TrainingError(
                f"{spec.source} takes {input_size_of(backbone)} px images, not {s.image_size}"
            )
        with self._scope():
            model = build_classifier(
                backbone,
                len(classes),
                size,
                preprocessing=s.preprocessing or spec.preprocessing,
                head=s.head,
            )
        self.model = model
        train, val, test = (manifest.subset(x) for x in ("train", "val", "test"))
        if not train:
            raise TrainingError("the training split is empty: add images or lower --val/--test")
        self._status("running", started, manifest, size)
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
        train_ds = self._dataset(train, "train", training=True)
        val_ds = self._dataset(val, "val") if val else None
        monitor = "val_loss" if val else "loss"
        class_weight = self._class_weights(train, classes)
        steps = math.ceil(len(train) / s.batch_size)

        phases = [("head" if s.freeze.preset == "all" else "train", s.freeze, s.learning_rate, s.epochs)]
        if s.freeze.preset == "all" and s.fine_tune_epochs > 0 and s.fine_tune_blocks > 0:
            plan = FreezePlan(
                "top",
                s.fine_tune_blocks,
                train_batchnorm=s.freeze.train_batchnorm,
                lr_decay=s.fine_tune_lr_decay,
            )
            phases.append(("fine-tune", plan, s.learning_rate * s.fine_tune_lr_factor, s.fine_tune_epochs))

        best = math.inf
        epoch = 0
        for phase, plan, lr, epochs in phases:
            summary = apply_freeze_plan(model, plan)
            cached = self._feature_cache_applies(plan)
            fit_model, fit_train, fit_val = model, train_ds, val_ds
            if cached:
                fit_model, fit_train, fit_val = self._head_on_cached_features(model, train, val)
            with self._scope():
                fit_model.compile(
                    optimizer=make_optimizer(s.optimizer, lr),
                    loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"],
                )
                multipliers = variable_multipliers(model, plan)
                if not cached and any(m != 1.0 for m in multipliers.values()):
                    model.set_lr_multipliers(lambda var, m=multipliers: m.get(id(var), 1.0))
            self.emit(
                ev.PhaseStarted(
                    phase,
                    plan.describe(),
                    epoch,
                    epochs,
                    lr,
                    summary.model_trainable,
                    summary.model_frozen,
                    steps,
                    cached,
                )
            )
            checkpoint = BestCheckpoint(self, self.checkpoint, monitor, best)
            several = multi_worker.is_multi_worker(self.strategy)
            callbacks = [
                EventBridge(
                    self, phase, steps, s.batch_size, self.agreed_stop if several else self.stop_event
                ),
                checkpoint,
                keras.callbacks.EarlyStopping(
                    monitor=monitor, patience=s.early_stopping_patience, restore_best_weights=True
                ),
            ]
            if several:  # Keras 3's fit does not run under MultiWorkerMirroredStrategy
                multi_worker.fit_distributed(
                    fit_model,
                    self.strategy,
                    fit_train,
                    fit_val,
                    epochs=epoch + epochs,
                    initial_epoch=epoch,
                    callbacks=callbacks,
                    class_weight=class_weight,
                    stop_event=self.stop_event,
                    agreed_stop=self.agreed_stop,
                )
            else:
                with _unknown_length_ok():
                    fit_model.fit(
                        fit_train,
                        validation_data=fit_val,
                        epochs=epoch + epochs,
                        initial_epoch=epoch,
                        class_weight=class_weight,
                        callbacks=callbacks,
                        verbose=0,
                    )
            epoch = len(self.history["epochs"])
            best = checkpoint.best
            if self.checkpoint.is_file():
                model.load_weights(self.checkpoint)
        return self._complete(model, started, "completed")

    def _dataset(self, entries, split: str, *, training: bool = False):
        """One split's pipeline; on a multi-worker run, each worker's share of it."""
        s = self.settings
        args = self._dataset_args() | {
            "training": training,
            "augmentation": s.augmentation if training else None,
            "cache": self._cache(split),
        }
        if not multi_worker.is_multi_worker(self.strategy):
            return make_dataset(entries, **args)
        return multi_worker.distribute(
            self.strategy,
            entries,
            s.batch_size,
            lambda share, batch_size: make_dataset(share, **(args | {"batch_size": batch_size})),
        )

    def _device(self) -> str:
        if not multi_worker.is_multi_worker(self.strategy):
            return describe_device()
        role = "chief" if self.primary else "records nothing"
        return (
            f"{describe_device()} · {multi_worker.task_name(self.strategy)} ({role}), "
            f"{self.strategy.num_replicas_in_sync} replicas in the cluster"
        )

    def _scope(self):
        """The distribution strategy's scope (variables are created and mirrored there), if any."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    # -- frozen-feature cache ------------------------------------------------------------------------
    def _feature_cache_applies(self, plan: FreezePlan) -> bool:
        """A fully frozen backbone (BatchNorm included) and no augmentation: the backbone computes the
        same features for an image every epoch, so they are computed once."""
        s = self.settings
        return (
            s.feature_cache and plan.preset == "all" and not s.augmentation.active and self.strategy is None
        )

    def _head_on_cached_features(self, model: TransferModel, train, val):
        """A model of the head layers alone (shared with ``model``) and datasets of cached features."""
        names = [layer.name for layer in model.layers]
        cut = next((n for n in ("head_pool", "head_flatten") if n in names), "backbone")
        position = names.index(cut)
        pixels = keras.Input(model.inputs[0].shape[1:])
        extractor = keras.Model(pixels, apply_chain(model.layers[1 : position + 1], pixels))
        key = self._feature_key()
        folder = self.run_dir / "features" / key
        arrays = {}
        for split, entries in (("train", train), ("val", val)):
            if entries:
                arrays[split] = self._features(extractor, entries, folder / f"{split}.npz")
        inputs = keras.Input(arrays["train"][0].shape[1:], name="features")
        head = keras.Model(
            inputs, apply_chain(model.layers[position + 1 :], inputs), name="head_on_cached_features"
        )
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
        return head, train_ds, val_ds

    def _feature_key(self) -> str:
        """What the features depend on: the data, the backbone and its weights, size, preprocessing."""
        import hashlib

        s = self.settings
        parts = [
            self.manifest.fingerprint(),
            s.backbone,
            s.weights,
            self.image_size,
            s.preprocessing,
            s.cut_at,
        ]
        return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]

    def _features(self, extractor: keras.Model, entries, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if path.is_file():
            with np.load(path) as saved:
                return saved["features"], saved["labels"]
        ds = make_dataset(entries, cache="none", **self._dataset_args())
        features, labels = [], []
        for x, y in ds:
            if self.stop_event.is_set():
                raise StopRequested()
            features.append(np.asarray(extractor.predict_on_batch(x), dtype=np.float32))
            labels.append(y.numpy())
        out = np.concatenate(features), np.concatenate(labels)
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, features=out[0], labels=out[1])
        return out

    # -- endings -----------------------------------------------------------------------------------
    def _complete(self, model, started: float, status: str) -> RunResult:
        manifest, size, test = self.manifest, self.image_size, self.manifest.subset("test")
        metrics: dict[str, float] = {}
        if self.best_epoch is not None:
            best = self.history["epochs"][self.best_epoch]
            metrics.update({k: v for k, v in best.items() if k not in ("phase", "epoch", "seconds")})
            metrics["best_epoch"] = self.best_epoch
        if not self.primary:  # the chief evaluates, records and exports
            self.emit(ev.RunFinished(status, str(self.run_dir), metrics, None))
            return RunResult(status, self.run_dir, metrics, model=model, primary=False)
        if self.settings.calibrate and manifest.subset("val"):
            metrics.update(self._calibrate(model))
        if test:
            metrics.update(self._evaluate_test(model, test))
        if self.load_errors.items():
            self.emit(ev.FilesSkipped(self.load_errors.items()))
        export_dir = None
        if self.export:
            from tlstudio.core.export import export_model

            result = export_model(
                model,
                self.run_dir,
                labels=manifest.classes,
                image_size=size,
                metadata=self._metadata(manifest, metrics, size),
                samples=self._samples(manifest, size),
            )
            export_dir = result.export_dir
        atomic.write_json(self.run_dir / "metrics.json", metrics)
        self._status(status, started, manifest, size, metrics=metrics)
        self.emit(ev.RunFinished(status, str(self.run_dir), metrics, str(export_dir) if export_dir else None))
        return RunResult(status, self.run_dir, metrics, export_dir, model=model)

    def _finish_stopped(self, started: float) -> RunResult:
        if not self.checkpoint.is_file():
            message = "stopped before the first epoch finished: no weights worth keeping"
            self._status("stopped", started, self.manifest, self.image_size, message=message)
            self.emit(ev.RunFinished("stopped", str(self.run_dir), message=message))
            return RunResult("stopped", self.run_dir, error=message)
        self.model.load_weights(self.checkpoint)
        return self._complete(self.model, started, "stopped")

    def _finish_failed(self, err: Exception, started: float) -> RunResult:
        message = _message_for(err)
        hint = _hint_for(err)
        checkpoint = str(self.checkpoint) if self.checkpoint.is_file() else None
        (self.run_dir / "error.txt").write_text(traceback.format_exc())
        with contextlib.suppress(OSError):
            self._status("failed", started, None, None, message=message)
        self.emit(ev.RunFailed(str(self.run_dir), message, hint, checkpoint))
        return RunResult("failed", self.run_dir, error=message, primary=self.primary)

    def _evaluate(self, model, entries):
        from tlstudio.core.evaluation import evaluate_items

        def predict(x):
            if self.strategy is not None:  # predict_on_batch would split the batch over the replicas
                return np.asarray(model(x.astype(np.float32), training=False))
            return model.predict_on_batch(x.astype(np.float32))

        return evaluate_items(
            predict,
            self.manifest.classes,
            self.image_size,
            self.data_dir,
            [(e.path, e.label) for e in entries],
        )

    def _calibrate(self, model) -> dict[str, float]:
        """Temperature scaling on the validation split, baked into the output layer: softmax(z / T)
        is the same as dividing the last Dense layer's kernel and bias by T."""
        from tlstudio.core.metrics import apply_temperature, fit_temperature, log_loss, reliability

        val = self._evaluate(model, self.manifest.subset("val"))
        t = fit_temperature(val.y_true, val.probs)
        layer = model.get_layer("predictions")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel / t, bias / t])
        calibrated = apply_temperature(val.probs, t)
        return {
            "temperature": t,
            "val_log_loss_before_calibration": log_loss(val.y_true, val.probs),
            "val_log_loss_calibrated": log_loss(val.y_true, calibrated),
            "val_ece_before_calibration": reliability(val.y_true, val.probs)["ece"],
            "val_ece_calibrated": reliability(val.y_true, calibrated)["ece"],
        }

    def _evaluate_test(self, model, test) -> dict[str, float]:
        """Every metric on the test split: evaluation.json and report.html in the run folder."""
        from tlstudio.core.gradcam import GradCam, GradCamError
        from tlstudio.core.report import write_report

        evaluation = self._evaluate(model, test)
        atomic.write_json(self.run_dir / "evaluation.json", evaluation.to_dict(with_predictions=True))
        try:
            cam = GradCam(model)
        except GradCamError:
            cam = None
        write_report(
            self.run_dir / "report.html",
            evaluation,
            self.data_dir,
            title=f"TL Studio run {self.run_dir.name} — {self.settings.backbone}",
            run_dir=self.run_dir,
            gradcam=cam,
        )
        m = evaluation.metrics
        return {
            "test_accuracy": m["accuracy"],
            "test_loss": m["loss"],
            "test_macro_f1": m["averages"]["macro"]["f1"],
            "test_ece": m["ece"],
            **({"test_auc": m["auc"]["macro"]} if m["auc"]["macro"] is not None else {}),
        }

    # -- helpers ------------------------------------------------------------------------------------
    def _manifest(self) -> Manifest:
        target = self.run_dir / "manifest.csv"
        if isinstance(self.manifest_source, Manifest):
            manifest = self.manifest_source
        elif self.manifest_source is not None:
            manifest = Manifest.load(self.manifest_source)
        else:
            report = inspect_folder(self.data_dir)
            if not report.usable:
                raise TrainingError(f"{self.data_dir} is not usable: {report.problem}")
            if report.skipped:
                self.emit(ev.FilesSkipped([(x.path, x.reason) for x in report.skipped]))
            config = SplitConfig(self.settings.val_fraction, self.settings.test_fraction, self.settings.seed)
            manifest = make_split(report.images, config)
        missing = [e.path for e in manifest.entries if not in_folder(self.data_dir, e.path).is_file()]
        if missing:
            raise TrainingError(
                f"{len(missing)} file(s) of the manifest are missing under {self.data_dir}, e.g. {missing[0]}"
            )
        if len(manifest.classes) < 2:
            raise TrainingError("the manifest has fewer than two classes")
        manifest.save(target)
        return manifest

    def _dataset_args(self) -> dict[str, object]:
        """What every split's pipeline shares."""
        return {
            "root": self.data_dir,
            "classes": self.manifest.classes,
            "image_size": self.image_size,
            "batch_size": self.settings.batch_size,
            "seed": self.settings.seed,
            "errors": self.load_errors,
        }

    def _cache(self, split: str) -> str:
        if self.settings.cache in ("auto", "memory", "none"):
            return self.settings.cache
        return str(self.run_dir / "cache" / split)

    def _class_weights(self, train, classes) -> dict[int, float] | None:
        counts = {c: 0 for c in classes}
        for e in train:
            counts[e.label] += 1
        present = [n for n in counts.values() if n]
        ratio = max(present) / min(present)
        mode = self.settings.class_weights
        if mode == "none" or (mode == "auto" and ratio <= IMBALANCE_WARNING_RATIO):
            return None
        weights = balanced_class_weights(counts)
        return {i: weights.get(c, 1.0) for i, c in enumerate(classes)}

    def _status(self, status, started, manifest, size, *, metrics=None, message="") -> None:
        data = {
            "status": status,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "seconds": round(time.time() - started, 2),
            "device": describe_device(),
            "data_dir": str(self.data_dir.resolve()),
            "backbone": self.settings.backbone,
            "checkpoint": str(self.checkpoint) if self.checkpoint.is_file() else None,
            "best_epoch": self.best_epoch,
            "skipped_while_training": [{"path": p, "reason": r} for p, r in self.load_errors.items()],
        }
        if manifest is not None:
            data.update(
                manifest_fingerprint=manifest.fingerprint(), classes=manifest.classes, image_size=size
            )
        if multi_worker.is_multi_worker(self.strategy):
            data["cluster"] = multi_worker.describe_cluster(self.strategy)
        if metrics:
            data["metrics"] = metrics
        if message:
            data["message"] = message
        atomic.write_json(self.run_dir / "run.json", data)

    def _metadata(self, manifest: Manifest, metrics: dict[str, float], size: int) -> dict[str, object]:
        return {
            "classes": manifest.classes,
            "image_size": size,
            "input": "RGB pixels 0-255, float32 (serving_default) or uint8 (serving_uint8), any size "
            "(resized inside)",
            "backbone": self.settings.backbone,
            "settings": self.settings.to_dict(),
            "metrics": metrics,
            "manifest_fingerprint": manifest.fingerprint(),
        }

    def _samples(self, manifest: Manifest, size: int) -> np.ndarray:
        from tlstudio.core.pipeline import load_for_model

        arrays = []
        for entry in (manifest.subset("test") or manifest.subset("val") or list(manifest.entries))[:8]:
            try:
                arrays.append(load_for_model(in_folder(self.data_dir, entry.path), size))
            except Exception:  # a sample that fails to load is simply not used for the check
                continue
        if not arrays:
            arrays = [np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)]
        return np.stack(arrays)


def make_strategy(name: str, stop_event: threading.Event | None = None):
    """None for one device, MirroredStrategy over the local GPUs (else the logical CPUs), or
    MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG`` (see ``multi_worker``)."""
    if name == "default":
        return None
    if name == "multiworker":
        return multi_worker.make_multi_worker_strategy(stop_event)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise TrainingError(f"unknown strategy {name}")


@contextlib.contextmanager
def _unknown_length_ok():
    """A filtered dataset has no known length: Keras warns when it reaches the end. That is fine."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
        yield


def _message_for(err: Exception) -> str:
    """Our own errors say what to do already; anything else is named by its type."""
    if isinstance(err, (TrainingError, BackboneError, multi_worker.MultiWorkerError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _hint_for(err: Exception) -> str:
    text = str(err).lower()
    if isinstance(err, tf.errors.ResourceExhaustedError) or "out of memory" in text or "oom" in text:
        return "out of memory: lower the batch size or the image size, or freeze more of the backbone"
    if isinstance(err, multi_worker.MultiWorkerError):
        return "fix TF_CONFIG or the data on every worker and start all workers again"
    if isinstance(err, BackboneError):
        return "check the backbone name, its weights, or the model file"
    if isinstance(err, TrainingError):
        return "fix the data or the settings named above and start again"
    return "see error.txt in the run folder for the full traceback; the best checkpoint so far is kept"
