"""``train``: one training run from Python, its keyword defaults read from ``core.settings``."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tlstudio.core.settings import defaults
from tlstudio.core.vocabulary import ClassWeights, Optimizer

if TYPE_CHECKING:
    from tlstudio.core.events import EventCallback
    from tlstudio.core.training.run_outcome import RunResult

PathLike = str | os.PathLike[str]
_D = defaults()
_BATCH: int | Literal["auto"] = "auto" if _D.auto_batch_size else _D.batch_size


def train(
    data: PathLike,
    out: PathLike,
    *,
    backbone: str,
    weights: str = _D.weights,
    image_size: int | None = _D.image_size,
    epochs: int = _D.epochs,
    fine_tune_epochs: int | None = _D.fine_tune_epochs,
    fine_tune_blocks: int = _D.fine_tune_blocks,
    batch_size: int | Literal["auto"] = _BATCH,
    learning_rate: float = _D.learning_rate,
    optimizer: Optimizer = _D.optimizer,
    early_stopping_patience: int = _D.early_stopping_patience,
    class_weights: ClassWeights = _D.class_weights,
    seed: int = _D.seed,
    val_fraction: float = _D.val_fraction,
    test_fraction: float = _D.test_fraction,
    device: str = _D.device,
    manifest: PathLike | None = None,
    overwrite: bool = False,
    on_event: EventCallback | None = None,
    stop: threading.Event | None = None,
    **settings: Any,
) -> RunResult:
    """Train a classifier with the two-phase recipe and export it, as ``tlstudio train`` does.

    A linear probe on the frozen backbone's features, then the top blocks fine-tuned (warm-up, cosine
    decay, a lower rate per lower block), early stopping on validation loss with the best weights
    restored, WiSE-FT; scored on the test split; a verified SavedModel in ``out/saved_model``.

    Args:
        data: a data folder (one sub-folder per class) or a labels CSV.
        out: the run folder to write (it must not exist, be empty, or ``overwrite`` be given).
        backbone: a Keras Applications name, ``kerashub:PRESET``, a ``.keras``/``.h5`` file or a
            SavedModel folder.
        weights: ``imagenet``, ``none`` (from scratch) or a weights file.
        image_size: square input size (None: the backbone's).
        epochs: phase 1 epochs when the head trains with the optimizer (the default probe converges).
        fine_tune_epochs: phase 2 epochs (None: sized by the data; 0: no fine-tuning).
        fine_tune_blocks: top blocks unfrozen in phase 2.
        batch_size: images per step; ``auto`` halves it and starts again when memory runs out.
        learning_rate: the head's rate (phase 2 runs at a tenth of it).
        optimizer: ``adam``, ``adamw``, ``sgd`` or ``rmsprop``.
        early_stopping_patience: epochs without a better validation loss before stopping.
        class_weights: ``auto`` (when imbalanced more than 5:1), ``balanced`` or ``none``.
        seed: the split's and training's seed.
        val_fraction: the validation share of each class.
        test_fraction: the test share of each class.
        device: ``auto``, ``cpu`` or ``gpu:N``.
        manifest: a split manifest (a run's ``manifest.csv``) to train on instead of a new split.
        overwrite: empty an existing run folder first.
        on_event: told every training event (``tlstudio.core.events``); e.g.
            ``tlstudio.progress.ProgressPrinter()`` for a live bar.
        stop: set it to stop after the current batch (the best weights so far are kept and exported).
        **settings: any other ``TrainSettings`` field, e.g. ``freeze=FreezePlan("none")``,
            ``augmentation=Augmentation(flip=False)``, ``calibrate=True``.

    Returns:
        The ``RunResult``: ``status`` (``completed``, ``stopped`` or ``failed_to_learn``), ``run_dir``,
        ``export_dir``, ``metrics`` (test accuracy and more) and the trained Keras ``model``.

    Raises:
        ValueError: a setting out of range or unknown, data that is not there or not usable, a
            backbone that cannot take ``image_size``: said before any work.
        TrainingError: the run failed (its message says why and what to do).

    Example:
        The folder and the backbone of the examples before; the probe only (``fine_tune_epochs=0``):

        >>> result = train("colours", "runs/first", backbone="tiny.keras", fine_tune_epochs=0)
        >>> result.status
        'completed'
        >>> (result.run_dir / "saved_model" / "saved_model.pb").is_file(), "test_accuracy" in result.metrics
        (True, True)
        >>> train("colours", "runs/second", backbone="tiny.keras", learning_rate=-1)
        Traceback (most recent call last):
        ...
        ValueError: learning_rate must be a finite number in (0, 10], not -1
    """
    from tlstudio.cli.common import data_problem
    from tlstudio.cli.options import image_size_problem
    from tlstudio.core.settings import TrainSettings

    given: dict[str, Any] = dict(
        backbone=backbone,
        weights=weights,
        image_size=image_size,
        epochs=epochs,
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_blocks=fine_tune_blocks,
        batch_size=_D.batch_size if batch_size == "auto" else batch_size,
        auto_batch_size=batch_size == "auto",
        learning_rate=learning_rate,
        optimizer=optimizer,
        early_stopping_patience=early_stopping_patience,
        class_weights=class_weights,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        device=device,
    )
    unknown = sorted((set(settings) - set(TrainSettings.__dataclass_fields__)) | (set(settings) & set(given)))
    if unknown:
        raise ValueError(f"train() takes no setting {', '.join(unknown)} (see TrainSettings' fields)")
    run_settings = TrainSettings(**given, **settings)  # (ValueError: a value out of range, named)
    if (why := data_problem(data)) is not None:
        raise ValueError(why)
    if manifest is not None and not Path(manifest).is_file():
        raise ValueError(f"the split {manifest} is not there (a run's manifest.csv)")
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()
    if (why := image_size_problem(run_settings)) is not None:  # before any run folder is claimed
        raise ValueError(why)
    from tlstudio.core.backbone.block_tokens import probe_features_problem

    if (why := probe_features_problem(run_settings)) is not None:  # last4 where it does not apply
        raise ValueError(why)
    from tlstudio.core.training.session import TrainingError, TrainingSession

    result = TrainingSession(
        run_settings,
        data,
        out,
        manifest=manifest,
        on_event=on_event,
        stop=stop,
        overwrite=overwrite,
    ).run()
    if result.status == "failed":
        raise TrainingError(f"{result.error} (run folder: {result.run_dir})")
    return result
