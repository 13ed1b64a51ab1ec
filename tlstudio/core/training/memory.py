"""Out of memory during a run: a message that says what to change, or, with the batch size on
*auto*, the same run again at half the batch size (bounded, and reported).

TensorFlow reports a full GPU (or host) memory as ``ResourceExhaustedError`` ("OOM when allocating
tensor …"), while the model is built or at any step. A run whose batch size the user chose fails
with a message and keeps its best checkpoint; an *auto* batch size halves and starts again.
"""

from __future__ import annotations

import dataclasses
import gc
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tlstudio.core import events as ev
from tlstudio.core.settings import TrainSettings
from tlstudio.core.training import devices, distribution
from tlstudio.core.training.failures import TrainingError

if TYPE_CHECKING:
    from tlstudio.core.training.run_outcome import RunResult
    from tlstudio.core.training.run_state import RunState

MAX_HALVINGS = 5  # 32 → 16 → 8 → 4 → 2 → 1
MIN_BATCH = 1


def is_out_of_memory(err: BaseException) -> bool:
    """True for TensorFlow's out-of-memory errors (also when wrapped by Keras or another error)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, tf.errors.ResourceExhaustedError):
            return True
        text = str(err)
        if "OOM when allocating" in text or "out of memory" in text.lower():
            return True
        err = err.__cause__ or err.__context__
    return False


def smaller_batch(
    settings: TrainSettings, halvings_so_far: int, cluster: bool = False
) -> TrainSettings | None:
    """The settings to try after running out of memory, or None when no retry is allowed.

    Args:
        settings: the settings that ran out of memory.
        halvings_so_far: how many times this run has already halved its batch size.
        cluster: a multi-worker run (one worker alone must not change the batch: the workers would
            no longer meet at the same steps).

    Returns:
        The same settings at half the batch size; None when the batch size was the user's own
        (``auto_batch_size`` off), is already 1, was halved ``MAX_HALVINGS`` times, or on a cluster.
    """
    if (
        cluster
        or not settings.auto_batch_size
        or settings.batch_size <= MIN_BATCH
        or halvings_so_far >= MAX_HALVINGS
    ):
        return None
    return dataclasses.replace(settings, batch_size=max(MIN_BATCH, settings.batch_size // 2))


def out_of_memory_message(settings: TrainSettings, image_size: int | None, device: str) -> str:
    """What ran out and what to change, in one line."""
    size = f"{image_size} px images" if image_size else "the backbone's image size"
    tried = (
        "" if settings.auto_batch_size else " (the batch size is your own; set it to auto to let it halve)"
    )
    precision = "" if settings.mixed_precision == "on" else ", turn on mixed precision (GPU)"
    return (
        f"out of memory on {device} at batch size {settings.batch_size} with {size}{tried}: lower the "
        f"batch size or the image size{precision}, or freeze more of the backbone; the best checkpoint "
        "so far is kept"
    )


def run_fitting_memory(session: RunState, started: float) -> RunResult:
    """``session.run_once`` on the run's device; after running out of memory, again at half the
    batch size while ``smaller_batch`` allows it, else a ``TrainingError`` that says what to change.

    Args:
        session: the run (its settings change to the batch size that fitted).
        started: when the run started (``time.time()``).

    Returns:
        The result of the attempt that fitted.

    Raises:
        TrainingError: out of memory and no smaller batch to try (the caller records the failure;
            the best checkpoint so far stays).
    """
    while True:
        try:
            with devices.placement(session.settings.device):
                return session.run_once(started)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            cluster = distribution.is_multi_worker(session.strategy)
            smaller = smaller_batch(session.settings, session.batch_halvings, cluster)
            if smaller is None:
                where = devices.describe_device(session.settings.device)
                raise TrainingError(
                    out_of_memory_message(session.settings, session.image_size, where)
                ) from err
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            session.emit(ev.BatchSizeReduced(session.settings.batch_size, smaller.batch_size, first_line))
            session.settings, session.batch_halvings = smaller, session.batch_halvings + 1
            release_memory(session)


def release_memory(session: RunState) -> None:
    """Drop the failed attempt's model and graphs so the next attempt has the memory back."""
    session.model = None
    policy = keras.config.dtype_policy()
    keras.backend.clear_session()  # (it resets the global dtype policy too)
    keras.config.set_dtype_policy(policy)
    gc.collect()
