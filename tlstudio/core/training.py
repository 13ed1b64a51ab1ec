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
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core import atomic, multi_worker, phases
from tlstudio.core import events as ev
from tlstudio.core.backbones import BackboneError, build_backbone, input_size_of, resolve_backbone
from tlstudio.core.callbacks import StopRequested
from tlstudio.core.dataset import in_folder
from tlstudio.core.health import IMBALANCE_WARNING_RATIO, balanced_class_weights, inspect_folder
from tlstudio.core.metrics import wilson_interval, within_chance
from tlstudio.core.model import TransferModel, build_classifier, set_batchnorm_momentum
from tlstudio.core.pipeline import LoadErrors, make_dataset
from tlstudio.core.recipe import batchnorm_momentum, escalate_to_full_training, plan_recipe
from tlstudio.core.settings import TrainSettings
from tlstudio.core.split import Manifest, SplitConfig, make_split

CHECKPOINT_NAME = "best.weights.h5"
NO_SIGNAL_MESSAGE = (
    "the frozen backbone's features carry no signal for these classes (the linear probe scores at "
    "chance in cross-validation): training every layer instead, BatchNorm included, as from scratch"
)


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
        self.final_scores: dict[str, float] = {}  # validation scores of the final weights (WiSE-FT)

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
        tf.config.experimental.enable_op_determinism()  # same seed, same figures (process-wide, idempotent)
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
        with self.scope():
            backbone = build_backbone(spec, weights=s.weights, image_size=s.image_size, cut_at=s.cut_at)
        size = s.image_size or input_size_of(backbone) or spec.default_size
        if spec.kind == "file" and s.image_size and input_size_of(backbone) not in (None, s.image_size):
            raise TrainingError(
                f"{spec.source} takes {input_size_of(backbone)} px images, not {s.image_size}"
            )
        with self.scope():
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
        class_weight = self._class_weights(train, classes)
        recipe = plan_recipe(s, len(train), probe_possible=self.strategy is None)
        if recipe.from_scratch:
            steps = math.ceil(len(train) / s.batch_size) * sum(p.epochs for p in recipe.phases)
            set_batchnorm_momentum(model, batchnorm_momentum(steps))
        best, probe_weights, tuned_weights = math.inf, None, None
        for phase in list(recipe.phases):
            epoch = len(self.history["epochs"])
            if phase.probe:
                best = phases.run_probe(self, model, phase, train, val, epoch, best, class_weight)
                probe_weights = model.get_weights()
                if self._probe_found_nothing(train, classes) and len(recipe.phases) > 1:
                    recipe = escalate_to_full_training(recipe, s, len(train))
                    steps = math.ceil(len(train) / s.batch_size) * recipe.phases[1].epochs
                    set_batchnorm_momentum(model, batchnorm_momentum(steps))
                    self.emit(ev.RecipeChanged(NO_SIGNAL_MESSAGE))
                    best = phases.run_fit_phase(
                        self, model, recipe.phases[1], train, val, epoch + 1, best, class_weight
                    )
                    if self.checkpoint.is_file():
                        model.load_weights(self.checkpoint)
                    break
            else:
                best = phases.run_fit_phase(self, model, phase, train, val, epoch, best, class_weight)
                tuned_weights = model.get_weights()  # the phase's own best (early stopping restores it)
            if self.checkpoint.is_file():
                model.load_weights(self.checkpoint)
        if recipe.interpolate and val and probe_weights is not None and tuned_weights is not None:
            self.final_scores = phases.interpolate(self, model, probe_weights, tuned_weights, val, best)
            model.load_weights(self.checkpoint)
        return self._complete(model, started, "completed")

    def _probe_found_nothing(self, train, classes) -> bool:
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
        if not multi_worker.is_multi_worker(self.strategy):
            return make_dataset(entries, **args)
        return multi_worker.distribute(
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

    def save_checkpoint(self, epoch: int | None, monitor: str, value: float) -> None:
        """Write the whole classifier's weights as the best checkpoint (atomically)."""
        with atomic.replacing(self.checkpoint) as tmp:
            self.model.save_weights(tmp)
        self.best_epoch = epoch
        self.emit(
            ev.CheckpointSaved(str(self.checkpoint), epoch if epoch is not None else -1, monitor, value)
        )

    def _device(self) -> str:
        if not multi_worker.is_multi_worker(self.strategy):
            return describe_device()
        role = "chief" if self.primary else "records nothing"
        return (
            f"{describe_device()} · {multi_worker.task_name(self.strategy)} ({role}), "
            f"{self.strategy.num_replicas_in_sync} replicas in the cluster"
        )

    def scope(self):
        """The distribution strategy's scope (variables are created and mirrored there), if any."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    # -- endings -----------------------------------------------------------------------------------
    def _complete(self, model, started: float, status: str) -> RunResult:
        manifest, size, test = self.manifest, self.image_size, self.manifest.subset("test")
        metrics: dict[str, float] = {}
        if self.best_epoch is not None:
            best = self.history["epochs"][self.best_epoch]
            metrics.update({k: v for k, v in best.items() if k not in ("phase", "epoch", "seconds")})
            metrics["best_epoch"] = self.best_epoch
        metrics.update(self.final_scores)
        verdict = learning_verdict(metrics, self.manifest)
        if verdict and status == "completed":
            status = "failed_to_learn"
            self.export = False  # a model no better than chance is not worth serving
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
        self._status(status, started, manifest, size, metrics=metrics, message=verdict or "")
        self.emit(
            ev.RunFinished(
                status, str(self.run_dir), metrics, str(export_dir) if export_dir else None, verdict or ""
            )
        )
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
        n = len(evaluation.y_true)
        low, high = wilson_interval(round(m["accuracy"] * n), n)
        return {
            "test_images": n,
            "test_accuracy_low": low,  # 95% Wilson interval
            "test_accuracy_high": high,
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


def learning_verdict(metrics: dict[str, float], manifest: Manifest) -> str | None:
    """Why a run did not learn, or None: the final accuracy on the validation split (the training
    split when there is none, or fewer than 10 validation images) is within noise of always
    answering the largest class."""
    val = manifest.subset("val")
    use_val = len(val) >= 10 and "val_accuracy" in metrics
    entries = val if use_val else manifest.subset("train")
    accuracy = metrics.get("val_accuracy" if use_val else "accuracy")
    if accuracy is None:
        return None
    counts = [sum(1 for e in entries if e.label == c) for c in manifest.classes]
    if not within_chance(accuracy, len(entries), counts):
        return None
    split = "validation" if use_val else "training"
    return (
        f"the model did not learn: {split} accuracy {accuracy:.2f} is within noise of always answering the "
        f"largest class ({max(counts) / max(sum(counts), 1):.2f}). Try: pretrained weights instead of none, "
        "more epochs, a higher --learning-rate, more images per class, or check the labels. "
        "Nothing was exported."
    )


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
