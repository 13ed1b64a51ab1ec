"""The training recipe as data: which phases a run has, their freeze plans, learning rates and budgets.

The defaults follow the practice for small data (LP-FT, Kumar et al. 2022; BiT's HyperRule,
Kolesnikov et al. 2020):

1. **probe** — the backbone frozen, the new head fitted to convergence as a linear probe on cached
   features (``core.probe``; no augmentation, L2 chosen by cross-validation). Seconds.
2. **fine-tune** — the top blocks unfrozen (BatchNorm frozen, in inference mode) at a rate 10× lower
   than the head's, each lower block at half the rate of the one above, warm-up then cosine decay,
   augmentation on, early stopping on validation loss with the best weights restored. Its budget in
   steps and its rate come from ``FINE_TUNE_RULES`` by the number of training images.
3. **soup** (off by default: ``soup_checkpoints``) — the best few fine-tune epochs by validation loss
   averaged greedily (Wortsman et al. 2022, ``core.training.soup``): each joins when the average does
   not raise the validation loss.
4. **interpolate** — WiSE-FT (Wortsman et al. 2022): the weights between the probe's and the
   fine-tuned ones (the soup), α chosen on the validation split.

From random weights (``weights="none"``) there is one phase: every layer trains, BatchNorm in
training mode with a momentum suited to the run's length, at the head's rate, warm-up and cosine, and
early stopping only after half the epochs, and BatchNorm's moving statistics started from a batch
of training images: a random network's activations can be a billion times smaller than the
initial moving variance of 1, which an average with momentum 0.9 needs some 200 steps to forget —
until then the model answers one class in inference mode, however well it trains.

Pure data: importing this module loads no TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.settings import TrainSettings

# (up to this many training images, fine-tune steps, of which warm-up) — the budget rule, BiT-style:
# small folders get enough steps to move, large ones a few epochs' worth.
FINE_TUNE_RULES: tuple[tuple[float, int, int], ...] = (  # (the last bound: no bound)
    (500, 200, 20),
    (5_000, 1_000, 50),
    (50_000, 5_000, 250),
    (math.inf, 10_000, 500),
)
NO_SIGNAL_MESSAGE = (
    "the frozen backbone's features carry no signal for these classes (the linear probe scores at "
    "chance in cross-validation): training every layer instead, BatchNorm included, as from scratch"
)
WISE_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)  # 0: the probe's weights, 1: the fine-tuned ones
MIN_EPOCHS = 3


@dataclass(frozen=True)
class Phase:
    """One phase of a run."""

    name: str  # "probe", "head", "fine-tune" or "train"
    plan: FreezePlan
    learning_rate: float  # the peak rate (after warm-up)
    epochs: int
    warmup_steps: int = 0
    cosine: bool = False  # decay to zero over the phase
    augment: bool = True
    probe: bool = False  # fitted in closed form on cached features, not with the optimizer
    min_epochs: int = 0  # early stopping may end the phase only after this many epochs
    reset_batchnorm: bool = False  # start BatchNorm's moving statistics from the data (from scratch)
    peft: str = "none"  # "lora" or "bitfit": only adapters, or biases and norms, of the plan's layers train


@dataclass(frozen=True)
class Recipe:
    """The phases of a run and whether WiSE-FT interpolation follows them."""

    phases: tuple[Phase, ...]
    interpolate: bool
    from_scratch: bool
    soup: int = 0  # the fine-tune phase's best epochs kept for the greedy soup (0: none)

    def describe(self) -> str:
        """One line per phase, as the CLI and the Train panel show it."""
        lines = []
        for p in self.phases:
            if p.probe:
                lines.append(f"{p.name}: linear probe on cached features, fitted to convergence")
            else:
                sched = f", warm-up {p.warmup_steps} steps then cosine" if p.cosine else ""
                peft = {"lora": " (LoRA adapters only)", "bitfit": " (biases and norms only)"}.get(p.peft, "")
                lines.append(
                    f"{p.name}: {p.plan.describe()}{peft}, lr {p.learning_rate:g}{sched}, ≤{p.epochs} epochs"
                )
        if self.soup > 1:
            lines.append(
                f"soup: the best {self.soup} fine-tune epochs averaged greedily, chosen on validation"
            )
        if self.interpolate:
            lines.append("interpolate: WiSE-FT between probe and fine-tuned weights, α on validation")
        return "\n".join(lines)


def fine_tune_budget(train_images: int) -> tuple[int, int]:
    """(steps, warm-up steps) of the fine-tune phase for this many training images."""
    for limit, steps, warmup in FINE_TUNE_RULES:
        if train_images <= limit:
            return steps, warmup
    raise AssertionError("unreachable")


def plan_recipe(s: TrainSettings, train_images: int, *, probe_possible: bool = True) -> Recipe:
    """The phases for these settings and this many training images.

    Args:
        s: the run's settings.
        train_images: images in the training split.
        probe_possible: False where features cannot be cached (a multi-worker run): the head is
            then trained with the optimizer for ``s.epochs`` epochs instead.

    Returns:
        The recipe the session runs.
    """
    steps_per_epoch = max(1, math.ceil(train_images / s.batch_size))
    if s.weights == "none":
        epochs = scratch_epochs(s)
        warmup = steps_per_epoch * epochs // 20
        plan = FreezePlan("none", train_batchnorm=True)
        return Recipe(
            (
                Phase(
                    "train",
                    plan,
                    s.learning_rate,
                    epochs,
                    warmup,
                    cosine=True,
                    min_epochs=epochs // 2,
                    reset_batchnorm=True,
                ),
            ),
            interpolate=False,
            from_scratch=True,
        )
    if is_one_phase(s.freeze):  # the user's own plan: one phase, as set
        return Recipe((Phase("train", s.freeze, s.learning_rate, s.epochs),), False, False)
    use_probe = probe_possible and s.feature_cache and not s.head.dense_units
    head = Phase(
        "probe" if use_probe else "head",
        s.freeze,
        s.learning_rate,
        s.epochs,
        augment=not use_probe,
        probe=use_probe,
    )
    if s.fine_tune_epochs == 0 or s.fine_tune_blocks <= 0:
        return Recipe((head,), False, False)
    plan = FreezePlan(
        "top", s.fine_tune_blocks, train_batchnorm=s.freeze.train_batchnorm, lr_decay=s.fine_tune_lr_decay
    )
    if s.fine_tune_epochs is None:
        steps, warmup = fine_tune_budget(train_images)
        epochs = max(MIN_EPOCHS, math.ceil(steps / steps_per_epoch))
    else:
        epochs = s.fine_tune_epochs
        warmup = min(steps_per_epoch * epochs // 10, 500)
    tune = Phase(
        "fine-tune",
        plan,
        s.learning_rate * (s.fine_tune_lr_factor if s.peft == "none" else 1.0),  # adapters: the head's rate
        epochs,
        warmup,
        cosine=True,
        min_epochs=math.ceil(warmup / steps_per_epoch),
        peft=s.peft,
    )
    soup = s.soup_checkpoints if s.soup_checkpoints > 1 else 0
    return Recipe((head, tune), interpolate=use_probe and s.interpolate, from_scratch=False, soup=soup)


def escalate_to_full_training(recipe: Recipe, s: TrainSettings, train_images: int) -> Recipe:
    """The probe found no signal in the frozen features (a random or unrelated backbone whose
    features vanish): the phases after it train every layer, BatchNorm included, at the head's
    rate, as from scratch — fine-tuning the top blocks of such a backbone cannot recover."""
    steps_per_epoch = max(1, math.ceil(train_images / s.batch_size))
    epochs = scratch_epochs(s)
    phase = Phase(
        "train-all",
        FreezePlan("none", train_batchnorm=True),
        s.learning_rate,
        epochs,
        steps_per_epoch * epochs // 20,
        cosine=True,
        min_epochs=epochs // 2,
        reset_batchnorm=True,
    )
    return Recipe((recipe.phases[0], phase), interpolate=False, from_scratch=True)


def scratch_epochs(s: TrainSettings) -> int:
    """From random weights: the head and fine-tune budgets together (as the baseline has)."""
    return s.epochs + (10 if s.fine_tune_epochs is None else s.fine_tune_epochs)


def batchnorm_momentum(total_steps: int) -> float:
    """A BatchNorm momentum whose averaging horizon is about a tenth of the run (0.9 to 0.99),
    so the moving statistics follow the weights in a short run from scratch."""
    horizon = max(10.0, total_steps / 10)
    return float(min(0.99, 1 - 1 / horizon))


def is_one_phase(plan) -> bool:
    """Whether a freeze plan trains as the user set it, in one phase (no probe, no fine-tune phase).

    Args:
        plan: the run's ``FreezePlan``.

    Returns:
        True for every plan but ``all`` (the default: the recipe's phases start from a frozen backbone).
    """
    return plan.preset != "all"
