"""A learning-rate finder for the fine-tune phase (after fastai's ``lr_find``, Smith 2015).

The head is first fitted as the linear probe (as the recipe does), the top blocks are unfrozen as in
phase 2, and the learning rate then grows exponentially from ``start`` to ``end`` over ``steps``
training steps on augmented batches, the loss recorded at each. The suggestion is fastai's "valley"
(inside the longest stretch where the smoothed loss keeps falling), capped at a tenth of the rate
where the loss is lowest. The model is
thrown away afterwards: nothing of the user's runs changes. On multi-label data (a labels CSV) the
head is the one-vs-rest probe's sigmoids and the loss is binary cross-entropy, as in training.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tlstudio.core import events as ev

SMOOTHING = 0.9  # exponential moving average of the loss, debiased (as fastai)
DIVERGE_FACTOR = 4.0  # stop once the smoothed loss exceeds 4x its minimum


@dataclass
class LrFindResult:
    """The rates tried, the (smoothed) loss at each, and the suggested peak rate."""

    rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float | None = None
    valley: float | None = None
    minimum: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "rates": self.rates,
            "losses": self.losses,
            "smoothed": self.smoothed,
            "suggestion": self.suggestion,
            "valley": self.valley,
            "minimum": self.minimum,
        }


def suggest(rates: list[float], smoothed: list[float]) -> tuple[float | None, float | None, float | None]:
    """(suggestion, valley, minimum) of a loss-versus-rate curve; None without enough points.

    The valley (fastai's default suggestion) is a point two thirds of the way into the longest
    stretch over which the smoothed loss keeps falling — robust to the noise of small batches,
    where the steepest single slope is not. The suggestion is the valley, capped at a tenth of the
    rate with the lowest loss (the classic rule), and never below the first rate tried.
    """
    n = len(rates)
    if n < 5:
        return None, None, None
    loss = list(smoothed)
    longest = [1] * n  # longest decreasing run (as a subsequence) ending at each point
    best_end = 0
    for i in range(1, n):
        for j in range(i):
            if loss[i] < loss[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[best_end]:
            best_end = i
    best_start = best_end - longest[best_end] + 1
    third = (best_end - best_start) / 3
    valley = float(rates[min(n - 1, best_start + int(2 * third))])
    minimum = float(rates[int(np.argmin(loss))])
    return max(float(rates[0]), min(valley, minimum / 10)), valley, minimum


def find_learning_rate(
    settings,
    data_dir: str | Path,
    *,
    manifest=None,
    steps: int = 100,
    start: float = 1e-7,
    end: float = 1.0,
    stop: threading.Event | None = None,
    on_event: Callable[[ev.Working], None] | None = None,
) -> LrFindResult:
    """Run the finder for these settings on ``data_dir``.

    Args:
        settings: TrainSettings (backbone, weights, image size, head, fine-tune blocks, batch size).
        data_dir: the data folder or labels CSV (or a CSV's folder, with its ``manifest``).
        manifest: a split to use (default: a new one from the settings' fractions and seed);
            a multi-label one measures the binary cross-entropy of a sigmoid head.
        steps: learning rates tried (one training step each).
        start, end: the range of rates, tried on a log scale.
        stop: set it to stop early (what was measured is returned): checked between batches.
        on_event: told each step as ``Working`` events (step in words, done of total): the probe's
            features and fits, then each rate tried.

    Returns:
        The curve and the suggestion.
    """
    import keras

    from tlstudio.core.backbone.classifier import classifier_for
    from tlstudio.core.backbone.freezing import apply_freeze_plan
    from tlstudio.core.backbone.registry import build_backbone, input_size_of, resolve_backbone
    from tlstudio.core.data.labels_csv import data_root
    from tlstudio.core.data.pipeline import LoadErrors, make_dataset
    from tlstudio.core.data.source import inspect_data
    from tlstudio.core.data.split import SplitConfig, make_split
    from tlstudio.core.freeze_plan import FreezePlan
    from tlstudio.core.settings import make_optimizer
    from tlstudio.core.training.callbacks import StopRequested
    from tlstudio.core.training.feature_cache import cached_features, feature_extractor
    from tlstudio.core.training.fit_scores import loss_and_metrics
    from tlstudio.core.training.interrupt import FirstBatchInterrupt
    from tlstudio.core.training.probe import fit_probe
    from tlstudio.core.training.probe_multilabel import fit_multilabel_probe

    if not (0 < start < end) or steps < 5:
        raise ValueError("the finder needs 0 < start < end and at least 5 steps")
    stop = stop or threading.Event()
    tell = on_event or (lambda _: None)
    s = settings
    keras.utils.set_random_seed(s.seed)
    if manifest is None:
        report = inspect_data(data_dir)
        if not report.usable:
            raise ValueError(f"{data_dir} is not usable: {report.problem}")
        manifest = make_split(report.images, SplitConfig.of(s), multi_label=report.task == "multi_label")
    multi = manifest.multi_label
    spec = resolve_backbone(s.backbone)
    backbone = build_backbone(spec, weights=s.weights, image_size=s.image_size, cut_at=s.cut_at)
    size = s.image_size or input_size_of(backbone) or spec.default_size
    classes = manifest.classes
    model = classifier_for(backbone, spec, s, len(classes), size, multi_label=multi)
    train = manifest.subset("train")
    common = {"root": data_root(data_dir), "classes": classes, "image_size": size, "seed": s.seed}
    common |= {"errors": LoadErrors(), "multi_label": multi}
    if not s.head.dense_units:  # start from the probe, as the recipe's phase 2 does
        apply_freeze_plan(model, FreezePlan("all"))
        step = "computing the backbone's features of the train split"
        tell(ev.Working(step, 0, len(train)))
        try:
            x, y = cached_features(
                feature_extractor(model),
                lambda: make_dataset(train, batch_size=s.batch_size, cache="none", **common),
                None,
                stop,
                progress=lambda done: tell(ev.Working(step, done, len(train))),
            )
        except StopRequested:  # stopped before a rate was tried: nothing measured
            return LrFindResult()
        step = "fitting the linear probe"
        tell(ev.Working(step))

        def counted(done: int, total: int) -> None:
            tell(ev.Working(step, done, total))

        probe = (
            fit_multilabel_probe(x, y, seed=s.seed, progress=counted)
            if multi
            else fit_probe(x, y, len(classes), seed=s.seed, progress=counted)
        )
        model.get_layer("predictions").set_weights([probe.kernel, probe.bias])
        if stop.is_set():
            return LrFindResult()
    plan = FreezePlan("top", s.fine_tune_blocks, train_batchnorm=s.freeze.train_batchnorm)
    apply_freeze_plan(model, plan)
    model.compile(
        optimizer=make_optimizer(s.optimizer, start),
        loss=loss_and_metrics(multi)["loss"],
        jit_compile=False,
    )
    data = make_dataset(
        train, batch_size=s.batch_size, training=True, augmentation=s.augmentation, cache="memory", **common
    ).repeat()
    result = LrFindResult()
    factor = (end / start) ** (1 / (steps - 1))
    average, best = 0.0, math.inf
    at_once = FirstBatchInterrupt(stop)
    step = f"trying learning rates from {start:.0e} to {end:.0e}"
    tell(ev.Working(step, 0, steps))
    for i, (xb, yb) in enumerate(data.take(steps)):
        if stop.is_set():
            break
        rate = start * factor**i
        model.optimizer.learning_rate.assign(rate)
        if i == 0:  # the first step traces the model (slow): a stop then ends it at its next layer
            at_once.arm()
        try:
            loss = float(model.train_on_batch(xb, yb))
        except StopRequested:
            break
        finally:
            if i == 0:
                at_once.disarm()
        if not math.isfinite(loss):
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smooth = average / (1 - SMOOTHING ** (i + 1))
        result.rates.append(rate)
        result.losses.append(loss)
        result.smoothed.append(smooth)
        tell(ev.Working(step, i + 1, steps))
        best = min(best, smooth)
        if i > 5 and smooth > DIVERGE_FACTOR * best:
            break
    result.suggestion, result.valley, result.minimum = suggest(result.rates, result.smoothed)
    return result


def plot(result: LrFindResult, path: str | Path) -> Path:
    """The curve as a PNG (matplotlib Agg), the suggestion marked."""
    from tlstudio.core import atomic
    from tlstudio.core.results.report import new_figure

    fig = new_figure(6, 3.5)
    ax = fig.add_subplot()
    ax.plot(result.rates, result.smoothed, label="smoothed loss")
    ax.plot(result.rates, result.losses, alpha=0.3, label="loss")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    if result.suggestion:
        ax.axvline(result.suggestion, color="C3", linestyle="--", label=f"suggested {result.suggestion:.1e}")
    if result.smoothed:
        low, high = min(result.smoothed), max(result.smoothed[: max(2, len(result.smoothed) // 2)])
        ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.25 * (high - low + 1e-9))
    ax.legend()
    path = Path(path)
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
