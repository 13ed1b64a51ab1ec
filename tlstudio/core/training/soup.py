"""Greedy checkpoint soup (Wortsman et al. 2022, "Model soups"): the fine-tuned endpoint is the average
of the best few epochs' weights that does not score worse on validation than the best epoch alone.

During fine-tuning ``SoupCandidates`` keeps, in memory, the trainable weights of the ``keep`` epochs
with the lowest validation loss (the frozen ones do not change within the phase: BatchNorm is in
inference mode, so its statistics are frozen too, which is what makes averaging weights valid). After
the phase ``greedy_soup`` sorts them by validation loss, starts from the best, and adds each next one
when the average of those taken so far and it does not raise the validation loss. WiSE-FT then
interpolates between the probe's weights and the soup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from tlstudio.core import events as ev
from tlstudio.core.training import distribution
from tlstudio.core.training.fit_scores import scores

if TYPE_CHECKING:
    from tlstudio.core.training.recipe import Phase
    from tlstudio.core.training.run_state import RunState

SKIP_SMALL_FOLDER = "no validation split to choose the ingredients on (the small-folder rule trains on it)"
SKIP_NO_VALIDATION = "no validation split to choose the ingredients on"
SKIP_BATCHNORM = "BatchNorm trains in this phase: its moving statistics cannot be averaged with the weights"
SKIP_MULTI_WORKER = "a multi-worker run: each worker sees only its share of the validation split"


@dataclass
class Candidate:
    """One epoch's trainable weights and its validation scores."""

    epoch: int
    val_loss: float
    val_accuracy: float
    weights: list[np.ndarray] = field(repr=False)


class SoupCandidates(keras.callbacks.Callback):
    """Keeps the trainable weights of the ``keep`` epochs with the lowest ``monitor`` (in memory)."""

    def __init__(self, variables: Sequence[Any], keep: int, monitor: str = "val_loss"):
        super().__init__()
        self.variables, self.keep, self.monitor = list(variables), keep, monitor
        self.candidates: list[Candidate] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        worst = max((c.val_loss for c in self.candidates), default=math.inf)
        if len(self.candidates) >= self.keep and not float(value) < worst:
            return
        weights = [np.array(keras.ops.convert_to_numpy(v)) for v in self.variables]
        accuracy = float(logs.get(self.monitor.replace("loss", "accuracy"), math.nan))
        self.candidates.append(Candidate(epoch, float(value), accuracy, weights))
        self.candidates.sort(key=lambda c: (c.val_loss, c.epoch))
        del self.candidates[self.keep :]


@dataclass
class SoupResult:
    """What the greedy soup did: which epochs went in and the validation scores before and after."""

    ingredients: list[int]  # epochs, best first
    kept: int  # candidates considered
    best_val_loss: float  # the best single epoch, measured again
    best_val_accuracy: float
    val_loss: float  # the soup's
    val_accuracy: float
    tried: list[dict[str, Any]]  # per candidate: epoch, the trial soup's val loss/accuracy, accepted

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (history.json and run.json)."""
        return {
            "used": len(self.ingredients) > 1,
            "ingredients": self.ingredients,
            "kept": self.kept,
            "best_val_loss": self.best_val_loss,
            "best_val_accuracy": self.best_val_accuracy,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "gain_val_loss": self.best_val_loss - self.val_loss,
            "gain_val_accuracy": self.val_accuracy - self.best_val_accuracy,
            "tried": self.tried,
        }


def average(weight_lists: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of several lists of arrays, summed in float64 so that equal arrays average
    to themselves exactly (floating arrays; others are taken from the first list)."""
    first = weight_lists[0]
    out = []
    for i, a in enumerate(first):
        if np.asarray(a).dtype.kind == "f":
            out.append(np.mean([w[i] for w in weight_lists], axis=0, dtype=np.float64).astype(a.dtype))
        else:
            out.append(np.array(a))
    return out


def assign(variables: Sequence[Any], weights: Sequence[np.ndarray]) -> None:
    """Set each variable to its array."""
    for v, w in zip(variables, weights, strict=True):
        v.assign(w)


def greedy_soup(
    variables: Sequence[Any],
    candidates: Sequence[Candidate],
    evaluate: Callable[[], tuple[float, float]],
) -> SoupResult:
    """Greedy soup over ``candidates``; leaves ``variables`` holding the soup.

    Args:
        variables: the trainable variables the candidates' weights belong to (in that order).
        candidates: at least one.
        evaluate: (validation loss, validation accuracy) of the model as its variables stand.

    Returns:
        The ingredients and the validation scores of the best single candidate and of the soup.

    Example:
        >>> v = [keras.Variable(np.zeros(2, "float32"))]
        >>> c = [Candidate(e, 0.1, 1.0, [np.full(2, e, "float32")]) for e in (1, 3)]
        >>> r = greedy_soup(v, c, lambda: (float(abs(v[0].numpy()[0] - 2)), 1.0))
        >>> r.ingredients, r.val_loss
        ([1, 3], 0.0)
    """
    ordered = sorted(candidates, key=lambda c: (c.val_loss, c.epoch))
    chosen = [ordered[0]]
    assign(variables, ordered[0].weights)
    best_loss, best_accuracy = evaluate()
    loss, accuracy = best_loss, best_accuracy
    tried: list[dict[str, Any]] = [
        {"epoch": ordered[0].epoch, "val_loss": loss, "val_accuracy": accuracy, "accepted": True}
    ]
    for candidate in ordered[1:]:
        assign(variables, average([c.weights for c in [*chosen, candidate]]))
        trial_loss, trial_accuracy = evaluate()
        accepted = trial_loss <= loss
        tried.append(
            {
                "epoch": candidate.epoch,
                "val_loss": trial_loss,
                "val_accuracy": trial_accuracy,
                "accepted": accepted,
            }
        )
        if accepted:
            chosen.append(candidate)
            loss, accuracy = trial_loss, trial_accuracy
    assign(variables, average([c.weights for c in chosen]))
    return SoupResult(
        [c.epoch for c in chosen], len(ordered), best_loss, best_accuracy, loss, accuracy, tried
    )


def val_scores(model, dataset, pos_weight: np.ndarray | None = None) -> dict[str, float]:
    """``val_loss`` and ``val_accuracy`` of ``model`` in inference mode over a validation dataset
    (multi-label: the loss weighted by ``pos_weight`` as the fine-tune's is)."""
    probs, labels = [], []
    for x, y in dataset:
        probs.append(np.asarray(model.predict_on_batch(x), np.float64))
        labels.append(np.asarray(y))
    return scores(np.concatenate(probs), np.concatenate(labels), "val_", pos_weight)


def soup_skipped(session: RunState, phase: Phase, val) -> str | None:
    """Why the fine-tune phase cannot make a soup (recorded and said), or None when it can."""
    if not val:
        return SKIP_SMALL_FOLDER if session.small_folder else SKIP_NO_VALIDATION
    if phase.plan.train_batchnorm:
        return SKIP_BATCHNORM
    if distribution.is_multi_worker(session.strategy):
        return SKIP_MULTI_WORKER
    return None


def record_skipped(session: RunState, why: str) -> None:
    """A soup that could not be made: run.json and history.json say why, and so does the run."""
    session.soup = {"used": False, "skipped": why}
    session.history["soup"] = session.soup
    session.emit(ev.Souped([], 0, math.nan, math.nan, math.nan, math.nan, why))


def make_soup(session: RunState, model, val, best: float) -> float:
    """The greedy soup of the fine-tune phase's kept epochs into ``model``; saved as the best
    checkpoint when it beats ``best`` (validation loss). Returns the new best."""
    kept, session.soup_candidates = session.soup_candidates, None
    if kept is None or not kept.candidates:
        return best
    dataset = session.dataset(val, "val")

    def evaluate() -> tuple[float, float]:
        measured = val_scores(model, dataset, session.pos_weight)
        return measured["val_loss"], measured["val_accuracy"]

    result = greedy_soup(kept.variables, kept.candidates, evaluate)
    session.soup = result.to_dict()
    # the soup becomes the run's best checkpoint when it beats every earlier phase on validation loss
    session.soup["best_checkpoint"] = bool(result.val_loss < best and len(result.ingredients) > 1)
    session.history["soup"] = session.soup
    session.save_history()
    session.emit(
        ev.Souped(
            result.ingredients,
            result.kept,
            result.best_val_loss,
            result.val_loss,
            result.best_val_accuracy,
            result.val_accuracy,
        )
    )
    if session.soup["best_checkpoint"]:  # (WiSE-FT, when it follows, replaces these scores with its own)
        session.final_scores = {"val_loss": result.val_loss, "val_accuracy": result.val_accuracy}
        session.save_checkpoint(session.best_epoch, "val_loss", result.val_loss)
        return result.val_loss
    return best
