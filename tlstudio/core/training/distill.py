"""Knowledge distillation: a small student trained on a run's soft labels, on the teacher's own split.

``distill(teacher_run, out, settings)`` writes a normal run folder for the student (settings, the
teacher's manifest, history, checkpoint, metrics, evaluation, report and export, through the same
``run_outcome.complete`` every run ends with), and then checks it against its teacher on the test
split: top-1 agreement, accuracy with 95% intervals, latency and size (``distill_check``). The
teacher's probabilities are computed once, from its exported SavedModel (the model ``predict`` and
``evaluate`` serve), and kept in ``RUN/teacher_probabilities.npz``. Training images are not
augmented: the cached soft labels are the teacher's answer for the image as it is.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from tlstudio.core import atomic
from tlstudio.core import events as ev
from tlstudio.core.backbone.classifier import classifier_for, set_batchnorm_momentum
from tlstudio.core.backbone.registry import build_backbone, input_size_of, resolve_backbone
from tlstudio.core.data.scan import in_folder, scan_unlabelled
from tlstudio.core.data.split import Manifest
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.run_folder import claim
from tlstudio.core.settings import Augmentation, TrainSettings
from tlstudio.core.training import phases, run_outcome
from tlstudio.core.training.callbacks import BestCheckpoint, EventBridge, StopRequested
from tlstudio.core.training.distill_data import (
    Agreement,
    Distiller,
    LabelledAccuracy,
    distillation_loss,
    image_stream,
    pack_targets,
    teacher_probabilities,
)
from tlstudio.core.training.distill_inputs import (
    DistillSettings,
    student_name,
    teacher_problem,
    teacher_record,
)
from tlstudio.core.training.failures import TrainingError
from tlstudio.core.training.recipe import batchnorm_momentum
from tlstudio.core.training.run_state import RunState
from tlstudio.core.training.session import TrainingSession

PHASE = "distil"


@dataclass
class DistillResult:
    """How a distillation ended, and the student beside its teacher (``distill_check.compare``)."""

    status: str  # a run's: "completed", "stopped", "failed" or "failed_to_learn"
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    comparison: dict[str, object] = field(default_factory=dict)
    error: str | None = None


def student_settings(settings: DistillSettings) -> TrainSettings:
    """The student's run settings (``settings.json``: what ``export`` and a rebuild read)."""
    return TrainSettings(
        backbone=student_name(settings.student),
        weights=settings.student_weights,
        image_size=settings.image_size,
        learning_rate=settings.learning_rate,
        batch_size=settings.batch_size,
        auto_batch_size=False,
        epochs=settings.epochs,
        fine_tune_epochs=0,
        augmentation=Augmentation(flip=False, rotation=0.0),
        seed=settings.seed,
        feature_cache=False,
        interpolate=False,
    )


def distill(
    teacher_run: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: DistillSettings,
    *,
    unlabelled: str | os.PathLike[str] | None = None,
    on_event: ev.EventCallback | None = None,
    stop: threading.Event | None = None,
    overwrite: bool = False,
) -> DistillResult:
    """Train ``settings.student`` on ``teacher_run``'s soft labels into the run folder ``out``.

    Blocks; reports through ``on_event`` like a training session (``RunStarted``, ``PhaseStarted``,
    ``BatchEnded``, ``EpochEnded``, ``Finishing``, ``RunFinished``/``RunFailed``) and stops within a
    batch once ``stop`` is set, keeping the best weights so far.

    Args:
        teacher_run: a finished single-label run folder (``distill_inputs.teacher_problem``).
        out: the student's run folder.
        settings: the student and how it learns.
        unlabelled: a folder of images without labels: they add the soft term only.
        on_event: the listener.
        stop: set to stop.
        overwrite: an existing ``out`` is emptied first.

    Returns:
        The result; a failure is reported (``error``, ``run.json``), not raised.

    Raises:
        TrainingError: the teacher cannot teach (``distill_inputs.teacher_problem``; nothing was written).
        RunFolderError: ``out`` belongs to another run or process (nothing was written).

    Example:
        >>> distill("runs/teacher", "runs/student", DistillSettings("EfficientNetLite0"))  # doctest: +SKIP
    """
    teacher = Path(teacher_run)
    if (why := teacher_problem(teacher)) is not None:
        raise TrainingError(why)
    info = teacher_record(teacher)
    session = TrainingSession(
        student_settings(settings),
        info["data_dir"],
        out,
        manifest=teacher / files.MANIFEST,
        on_event=on_event,
        stop=stop,
    )
    lock = claim(session.run_dir, overwrite=overwrite)
    started = session.started = time.time()
    keras.utils.set_random_seed(settings.seed)
    try:
        atomic.write_json(session.run_dir / files.SETTINGS, session.settings.to_dict())
        student = _train(session, teacher, settings, unlabelled, started)
        result = run_outcome.complete(session, student, started, "completed")
    except StopRequested:
        result = run_outcome.finish_stopped(session, started)
    except Exception as err:  # reported in run.json and by RunFailed, like any run
        result = run_outcome.finish_failed(session, err, started)
    finally:
        lock.release()
    outcome = DistillResult(result.status, session.run_dir, result.metrics, error=result.error)
    if result.export_dir is not None:
        from tlstudio.core.training.distill_check import compare, record

        session.emit(ev.Finishing("checking the student against its teacher"))
        outcome.comparison = compare(teacher, session.run_dir)
        record(session.run_dir, teacher, settings, unlabelled, outcome.comparison)
    elif result.status != "failed":
        from tlstudio.core.training.distill_check import record

        record(session.run_dir, teacher, settings, unlabelled, {})
    if result.status != "failed":  # the cards were written before the teacher was recorded
        from tlstudio.core.deploy.model_card import refresh_cards

        refresh_cards(session.run_dir)
    return outcome


def _train(session: RunState, teacher: Path, settings: DistillSettings, unlabelled, started: float):
    """Teacher probabilities, the student, its fit; returns the student with its best weights."""
    from tlstudio.core.results.evaluation import load_exported

    manifest = Manifest.load(teacher / files.MANIFEST)
    manifest.save(session.run_dir / files.MANIFEST)  # the teacher's split, unchanged: leak-free
    classes, data = manifest.classes, session.data_dir
    train, val, test = (manifest.subset(x) for x in ("train", "val", "test"))
    extra = _unlabelled_paths(unlabelled, session, manifest)
    paths = [in_folder(data, e.path) for e in (*train, *val, *test)] + extra
    labels = np.array([classes.index(e.label) for e in (*train, *val, *test)] + [-1] * len(extra))
    model = load_exported(teacher)
    if model.labels != classes:
        raise TrainingError(f"{teacher}'s export and its manifest name different classes")

    def progress(done: int, total: int) -> None:
        session.emit(ev.Working("the teacher labels the images", done, total))

    probs, loaded = teacher_probabilities(
        model.predict, paths, model.image_size, session.load_errors, progress
    )
    _save_npz(session.run_dir / files.TEACHER_PROBABILITIES, paths, data, probs, labels, loaded)
    spec = resolve_backbone(session.settings.backbone)
    backbone = build_backbone(
        spec, weights=settings.student_weights, image_size=settings.image_size, cut_at=None
    )
    size = settings.image_size or input_size_of(backbone) or spec.default_size
    student = classifier_for(backbone, spec, session.settings, len(classes), size)
    session.model, session.manifest, session.image_size = student, manifest, size
    n_train, n_val = len(train), len(val)
    rows = {
        "train": [*range(n_train), *range(len(labels) - len(extra), len(labels))],
        "val": list(range(n_train, n_train + n_val)),
    }
    targets = pack_targets(probs, labels)
    streams = {
        split: image_stream(
            [paths[i] for i in kept],
            targets[kept],
            size,
            settings.batch_size,
            training=split == "train",
            seed=settings.seed,
            errors=session.load_errors,
        )
        for split, index in rows.items()
        if (kept := [i for i in index if loaded[i]])
    }
    if "train" not in streams:
        raise TrainingError("the teacher's training split has no image the student can load")
    session.write_status("running", started, manifest, size)
    session.emit(
        ev.RunStarted(
            str(session.run_dir),
            session.device_words,
            classes,
            n_train + len(extra),
            n_val,
            len(test),
            size,
            session.settings.backbone,
        )
    )
    _fit(session, student, streams, settings, sum(loaded[i] for i in rows["train"]))
    return student


def _fit(session: RunState, student, streams: dict, settings: DistillSettings, images: int) -> None:
    """Adam on the distillation loss (cosine decay), the best weights on validation loss kept."""
    steps = math.ceil(images / settings.batch_size)
    # every layer trains, BatchNorm in training mode: its moving statistics must follow the weights
    # within the run (a from-scratch student kept Keras' 0.999 and scored chance on validation)
    set_batchnorm_momentum(student, batchnorm_momentum(steps * settings.epochs))
    distiller = Distiller(student)
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps * settings.epochs)
    distiller.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=distillation_loss(settings.temperature, settings.soft_weight),
        metrics=[Agreement(), LabelledAccuracy()],
    )
    trainable = sum(int(np.prod(w.shape)) for w in student.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in student.non_trainable_weights)
    session.emit(
        ev.PhaseStarted(
            PHASE,
            f"the student learns the teacher's soft labels (T = {settings.temperature:g})",
            0,
            settings.epochs,
            settings.learning_rate,
            trainable,
            frozen,
            steps,
        )
    )
    monitor = "val_loss" if "val" in streams else "loss"
    callbacks = [
        EventBridge(session, PHASE, steps, settings.batch_size, session.stop),
        BestCheckpoint(session, session.checkpoint, monitor),
    ]
    with phases._unknown_length_ok():  # (a filtered stream has no known length)
        distiller.fit(
            streams["train"],
            validation_data=streams.get("val"),
            epochs=settings.epochs,
            callbacks=callbacks,
            verbose=0,
        )
    if session.checkpoint.is_file():
        student.load_weights(session.checkpoint)


def _unlabelled_paths(folder, session: RunState, manifest: Manifest) -> list[Path]:
    """The images of ``folder`` (sub-folders too); unusable files are named with the run's skipped files,
    and copies of a validation or test image (same content) are left out: they would leak."""
    if folder is None:
        return []
    scan = scan_unlabelled(folder)
    for skipped in scan.skipped:
        session.load_errors.add(str(in_folder(folder, skipped.path)), skipped.reason)
    held_out = {e.sha256 for e in (*manifest.subset("val"), *manifest.subset("test"))}
    copies = [r.path for r in scan.images if r.sha256 in held_out]
    if copies:
        session.emit(
            ev.RecipeChanged(
                f"{len(copies)} unlabelled image(s) are copies of validation or test images and were "
                f"left out (they would leak): {', '.join(copies[:5])}{' …' if len(copies) > 5 else ''}"
            )
        )
    return [in_folder(folder, r.path) for r in scan.images if r.sha256 not in held_out]


def _save_npz(target: Path, paths, data: Path, probs: np.ndarray, labels: np.ndarray, loaded) -> None:
    """The teacher's probabilities as a NumPy ``.npz`` (atomically): ``paths`` (relative to the data
    folder where they are in it), ``probabilities``, ``labels`` (-1: unlabelled) and ``loaded``."""

    def shown(p: Path) -> str:
        try:
            return p.relative_to(data).as_posix()
        except ValueError:
            return str(p)

    names = np.array([shown(Path(p)) for p in paths], dtype=str)
    with atomic.replacing(target) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, paths=names, probabilities=probs, labels=labels, loaded=loaded)
