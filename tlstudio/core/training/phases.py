"""Running the recipe's phases on a session: the linear probe, an optimizer phase, WiSE-FT.

Each runner takes the run (``run_state.RunState``) (its settings, split, datasets, history and checkpoint)
and the best monitored value so far, and returns the new best: a phase only replaces the best
checkpoint when it beats every earlier phase on validation loss.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from tlstudio.core import events as ev
from tlstudio.core.backbone.classifier import reset_batchnorm_statistics, set_batchnorm_momentum
from tlstudio.core.backbone.freezing import apply_freeze_plan, summarize, variable_multipliers
from tlstudio.core.backbone.peft import apply_peft, merge_lora
from tlstudio.core.settings import EARLY_STOPPING_MIN_DELTA, make_optimizer
from tlstudio.core.training import distribution, feature_cache, resume
from tlstudio.core.training.callbacks import BestCheckpoint, EventBridge, LastCheckpoint
from tlstudio.core.training.fit_scores import loss_and_metrics, scores
from tlstudio.core.training.interrupt import StopDuringFirstBatch
from tlstudio.core.training.probe import fit_probe
from tlstudio.core.training.probe_multilabel import fit_multilabel_probe
from tlstudio.core.training.recipe import (
    NO_SIGNAL_MESSAGE,
    WISE_ALPHAS,
    Phase,
    Recipe,
    batchnorm_momentum,
    escalate_to_full_training,
)
from tlstudio.core.training.recipe_callbacks import mix_weights
from tlstudio.core.training.schedules import WarmupCosine
from tlstudio.core.training.soup import SoupCandidates, make_soup, record_skipped, soup_skipped, val_scores

if TYPE_CHECKING:
    from tlstudio.core.training.run_state import RunState


# Restoring the best weights into a model whose optimizer has since made its variables: Keras warns
# that it skips the optimizer's (it has to: they did not exist when the weights were saved). Only the
# model's weights are wanted, so the warning only confused people reading the CLI's output.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer", category=UserWarning)


def split_features(session: RunState, model, train, val) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Cached features of the train and validation splits (computed once per content)."""
    extractor = feature_cache.feature_extractor(model)
    key = feature_cache.feature_key(extractor, session.manifest.fingerprint(), session.image_size)
    folder = session.run_dir / "features" / key
    out = {}
    for split, entries in (("train", train), ("val", val)):
        if entries:
            step = f"computing the backbone's features of the {split} split"
            session.emit(ev.Working(step, 0, len(entries)))
            out[split] = feature_cache.cached_features(
                extractor,
                lambda e=entries: session.features_dataset(e),
                folder / f"{split}.npz",
                session.stop,
                progress=_working(session, step, len(entries)),
            )
    return out


def _working(session: RunState, step: str, total: int):
    """A progress callback that reports ``step`` as ``Working`` (images done of ``total``)."""
    return lambda done: session.emit(ev.Working(step, done, total))


def run_recipe(session: RunState, model, recipe: Recipe, train, val, class_weight) -> None:
    """Run every phase (from where a resumed run stopped), then WiSE-FT; the best weights end up in
    ``model`` and in the best checkpoint."""
    folder = session.checkpoint.parent
    state = session.resume_state
    best, probe_weights, tuned_weights = math.inf, None, None
    start, resume_epoch, phase_first = 0, None, None
    if state is not None:
        if state.escalated:
            recipe = _escalate(session, model, recipe, train)
        if (folder / resume.PROBE_WEIGHTS).is_file():
            model.load_weights(folder / resume.PROBE_WEIGHTS)
            probe_weights = model.get_weights()
        model.load_weights(folder / resume.LAST_WEIGHTS)
        if state.phase_done and session.checkpoint.is_file():  # the next phase starts from the best
            model.load_weights(session.checkpoint)
        best, session.best_epoch = state.best, state.best_epoch
        start = state.phase + 1 if state.phase_done else state.phase
        if not state.phase_done:
            resume_epoch, phase_first = state.epoch + 1, state.phase_first_epoch
    escalated = bool(state and state.escalated)
    index = start
    while index < len(recipe.phases):
        phase = recipe.phases[index]
        epoch = len(session.history["epochs"])
        if phase.probe:
            best = run_probe(session, model, phase, train, val, epoch, best, class_weight)
            probe_weights = model.get_weights()
            resume.save_probe(folder, model)
            if len(recipe.phases) > 1 and session.probe_found_nothing(train, session.manifest.classes):
                recipe, escalated = _escalate(session, model, recipe, train), True
                session.emit(ev.RecipeChanged(NO_SIGNAL_MESSAGE))
            first = epoch
        else:
            first = phase_first if index == start and resume_epoch is not None else epoch
            best = run_fit_phase(
                session,
                model,
                phase,
                train,
                val,
                first,
                best,
                class_weight,
                phase_index=index,
                resume_epoch=resume_epoch if index == start else None,
                escalated=escalated,
            )
            if session.soup_candidates is not None:  # the fine-tune phase kept its best epochs
                best = make_soup(session, model, val, best)
            tuned_weights = model.get_weights()  # the phase's own best (early stopping restores it)
        last = len(session.history["epochs"]) - 1
        session.save_last(resume.ResumeState(index, last, first, best, session.best_epoch, True, escalated))
        if session.checkpoint.is_file():
            model.load_weights(session.checkpoint)
        index += 1
    if recipe.interpolate and val and probe_weights is not None and tuned_weights is not None:
        session.final_scores = interpolate(session, model, probe_weights, tuned_weights, val, best)
        model.load_weights(session.checkpoint)


def _escalate(session: RunState, model, recipe: Recipe, train) -> Recipe:
    s = session.settings
    recipe = escalate_to_full_training(recipe, s, len(train))
    steps = math.ceil(len(train) / s.batch_size) * recipe.phases[1].epochs
    set_batchnorm_momentum(model, batchnorm_momentum(steps))
    return recipe


def run_probe(
    session: RunState,
    model,
    phase: Phase,
    train,
    val,
    first_epoch: int,
    best: float,
    class_weight: dict[int, float] | None,
) -> float:
    """Fit the head as a linear probe on cached features and record it as one epoch."""
    summary = apply_freeze_plan(model, phase.plan)
    steps = math.ceil(len(train) / session.settings.batch_size)
    session.emit(
        ev.PhaseStarted(
            phase.name,
            "linear probe on the frozen backbone's features",
            first_epoch,
            1,
            0.0,
            summary.model_trainable,
            summary.model_frozen,
            steps,
            True,
        )
    )
    start = time.perf_counter()
    arrays = split_features(session, model, train, val)
    x, y = arrays["train"]
    working = lambda done, total: session.emit(ev.Working("fitting the linear probe", done, total))  # noqa: E731
    if session.manifest.multi_label:  # one-vs-rest: a sigmoid per label
        probe = fit_multilabel_probe(
            x, y, seed=session.settings.seed, progress=working, pos_weight=session.pos_weight
        )
    else:
        weight = None if class_weight is None else np.array([class_weight[int(c)] for c in y])
        probe = fit_probe(
            x,
            y,
            len(session.manifest.classes),
            sample_weight=weight,
            seed=session.settings.seed,
            progress=working,
        )
    model.get_layer("predictions").set_weights([probe.kernel, probe.bias])
    metrics = {**scores(probe.predict_proba(x), y, "", session.pos_weight)}
    if "val" in arrays:
        metrics |= scores(probe.predict_proba(arrays["val"][0]), arrays["val"][1], "val_", session.pos_weight)
    record = {
        "phase": phase.name,
        "epoch": first_epoch,
        **metrics,
        "learning_rate": 0.0,
        "seconds": time.perf_counter() - start,
        "probe_l2": probe.l2,
        "probe_iterations": probe.iterations,
        "probe_converged": probe.converged,
    }
    if probe.cv_accuracy is not None:
        record["probe_cv_accuracy"] = probe.cv_accuracy
    session.history["epochs"].append(record)
    session.log_scalars(first_epoch, metrics)
    session.save_history()
    session.emit(ev.EpochEnded(phase.name, first_epoch, metrics, 0.0, record["seconds"]))
    monitor = "val_loss" if "val" in arrays else "loss"
    if metrics[monitor] < best:
        best = metrics[monitor]
        session.save_checkpoint(first_epoch, monitor, best)
    return best


def run_fit_phase(
    session: RunState,
    model,
    phase: Phase,
    train,
    val,
    first_epoch: int,
    best: float,
    class_weight: dict[int, float] | None,
    *,
    phase_index: int = 0,
    resume_epoch: int | None = None,
    escalated: bool = False,
) -> float:
    """Train with the optimizer for up to ``phase.epochs`` epochs (early stopping, best checkpoint)."""
    s = session.settings
    summary, peft = apply_freeze_plan(model, phase.plan), None
    if phase.peft != "none":  # only LoRA adapters, or biases and norms, of the plan's layers train
        with session.scope():
            peft = session.peft = apply_peft(model, phase.peft)
        summary = summarize(model)
    steps = math.ceil(len(train) / s.batch_size)
    if phase.reset_batchnorm and resume_epoch is None:
        sample = next(iter(session.features_dataset(train[:: max(1, len(train) // 64)][:64], batch_size=64)))[
            0
        ]
        reset_batchnorm_statistics(model, sample)
    augment = phase.augment and s.augmentation.active
    cached = s.feature_cache and phase.plan.preset == "all" and not augment and session.strategy is None
    fit_model = model
    if cached:
        arrays = split_features(session, model, train, val)
        fit_model = feature_cache.head_model(model, arrays["train"][0].shape[1:])
        fit_train, fit_val = session.feature_datasets(arrays)
    else:
        fit_train = session.dataset(train, "train", training=True, augment=augment)
        fit_val = session.dataset(val, "val") if val else None
    rate = phase.learning_rate
    if phase.cosine:
        # Keras counts one optimizer iteration more per epoch than there are batches when the
        # dataset's length is unknown (a pipeline that drops unreadable files): seen in Keras 3.15
        known = (
            tf.data.experimental.cardinality(fit_train) >= 0
            if isinstance(fit_train, tf.data.Dataset)
            else True
        )
        per_epoch = steps if known else steps + 1
        rate = WarmupCosine(phase.learning_rate, per_epoch * phase.epochs, phase.warmup_steps)
    else:
        per_epoch = steps
    with session.scope():
        fit_model.compile(
            optimizer=make_optimizer(s.optimizer, rate),
            **loss_and_metrics(session.manifest.multi_label, session.pos_weight),
        )
        multipliers = variable_multipliers(model, phase.plan)
        if hasattr(model, "clear_lr_multipliers"):
            model.clear_lr_multipliers()  # no groups left over from an earlier phase
        if not cached and any(m != 1.0 for m in multipliers.values()):
            model.set_lr_multipliers(lambda var, m=multipliers: m.get(id(var), 1.0))
        if resume_epoch is not None:  # the schedule continues where the phase stopped
            done = (resume_epoch - first_epoch) * (per_epoch if phase.cosine else steps)
            for optimizer in [fit_model.optimizer, *(o for _, o in model._lr.groups)]:
                optimizer.iterations.assign(done)
    session.emit(
        ev.PhaseStarted(
            phase.name,
            phase.plan.describe() + (f"; {peft.describe()}" if peft else ""),
            first_epoch,
            phase.epochs,
            phase.learning_rate,
            summary.model_trainable,
            summary.model_frozen,
            steps,
            cached,
        )
    )
    monitor = "val_loss" if val else "loss"
    checkpoint = BestCheckpoint(session, session.checkpoint, monitor, best)
    several = distribution.is_multi_worker(session.strategy)
    stop = session.agreed_stop if several else session.stop
    callbacks = [
        EventBridge(session, phase.name, steps, s.batch_size, stop),
        checkpoint,
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=s.early_stopping_patience,
            min_delta=EARLY_STOPPING_MIN_DELTA,
            restore_best_weights=True,
            start_from_epoch=first_epoch + phase.min_epochs,
        ),
    ]
    session.soup_candidates = None
    if phase.name == "fine-tune" and s.soup_checkpoints > 1:
        if (why := soup_skipped(session, phase, val)) is None:
            session.soup_candidates = SoupCandidates(model.trainable_variables, s.soup_checkpoints, monitor)
            callbacks.append(session.soup_candidates)
        else:
            record_skipped(session, why)
    callbacks.append(
        LastCheckpoint(
            session,
            lambda epoch: resume.ResumeState(
                phase_index, epoch, first_epoch, checkpoint.best, session.best_epoch, False, escalated
            ),
        )
    )
    start = first_epoch if resume_epoch is None else resume_epoch
    last = first_epoch + phase.epochs
    try:
        if several:  # Keras 3's fit does not run under MultiWorkerMirroredStrategy
            distribution.fit_distributed(
                fit_model,
                session.strategy,
                fit_train,
                fit_val,
                epochs=last,
                initial_epoch=start,
                callbacks=callbacks,
                class_weight=class_weight,
                stop=session.stop,
                agreed_stop=session.agreed_stop,
            )
        else:
            at_once = StopDuringFirstBatch(stop)  # a slow first batch (tracing) need not delay a Stop
            try:
                with _unknown_length_ok():
                    fit_model.fit(
                        fit_train,
                        validation_data=fit_val,
                        epochs=last,
                        initial_epoch=start,
                        class_weight=class_weight,
                        callbacks=[at_once, *callbacks],
                        verbose=0,
                    )
            finally:
                at_once.interrupt.close()
    finally:
        if peft is not None:  # adapters folded into the kernels: one plain model again
            merge_lora(model)
    return checkpoint.best


def interpolate(
    session: RunState, model, start: list[np.ndarray], end: list[np.ndarray], val, best: float
) -> dict[str, float]:
    """WiSE-FT: try (1 - α)·start + α·end for each α of ``WISE_ALPHAS``, keep the lowest validation
    loss, and save it as the best checkpoint when it beats ``best``. Returns the chosen α's scores."""
    dataset = session.dataset(val, "val")
    tried = []
    for alpha in WISE_ALPHAS:
        model.set_weights(mix_weights(start, end, alpha))
        tried.append({"alpha": alpha, **val_scores(model, dataset, session.pos_weight)})
    chosen = min(tried, key=lambda t: (t["val_loss"], -t["alpha"]))
    alpha = chosen["alpha"]
    model.set_weights(mix_weights(start, end, alpha))
    session.history["interpolation"] = tried
    session.save_history()
    session.emit(
        ev.Interpolated(
            [t["alpha"] for t in tried],
            [t["val_loss"] for t in tried],
            [t["val_accuracy"] for t in tried],
            alpha,
        )
    )
    if chosen["val_loss"] <= best:
        session.save_checkpoint(session.best_epoch, "val_loss", chosen["val_loss"])
    return {"wise_alpha": alpha, "val_loss": chosen["val_loss"], "val_accuracy": chosen["val_accuracy"]}


@contextlib.contextmanager
def _unknown_length_ok():
    """A filtered dataset has no known length: Keras warns when it reaches the end. That is fine."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
        yield
