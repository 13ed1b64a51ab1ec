"""Plain events a training session reports; the CLI prints them, the GUI turns them into signals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunStarted:
    """Training is about to begin."""

    run_dir: str
    device: str
    classes: list[str]
    train_images: int
    val_images: int
    test_images: int
    image_size: int
    backbone: str


@dataclass(frozen=True)
class BatchSizeReduced:
    """Memory ran out with the batch size on auto: the run starts again at half the batch size."""

    old: int
    new: int
    message: str  # what ran out, from the error


@dataclass(frozen=True)
class PhaseStarted:
    """A phase of the recipe begins ("head": frozen backbone; "fine-tune": top blocks unfrozen)."""

    phase: str
    description: str
    first_epoch: int  # 0-based, counted over the whole run
    epochs: int
    learning_rate: float
    trainable_params: int
    frozen_params: int
    steps_per_epoch: int
    uses_feature_cache: bool = False


@dataclass(frozen=True)
class BatchEnded:
    """One training step done."""

    phase: str
    epoch: int
    step: int  # 1-based within the epoch
    steps: int
    loss: float
    accuracy: float | None
    images_per_second: float


@dataclass(frozen=True)
class EpochEnded:
    """An epoch done, with training and validation metrics."""

    phase: str
    epoch: int
    metrics: dict[str, float]
    learning_rate: float
    seconds: float


@dataclass(frozen=True)
class CheckpointSaved:
    """The best weights so far were written."""

    path: str
    epoch: int
    monitor: str
    value: float


@dataclass(frozen=True)
class RecipeChanged:
    """The recipe changed course during the run, and why (e.g. the probe found no signal)."""

    reason: str


@dataclass(frozen=True)
class Interpolated:
    """WiSE-FT: validation loss and accuracy at each mix of probe (α 0) and fine-tuned (α 1) weights."""

    alphas: list[float]
    val_losses: list[float]
    val_accuracies: list[float]
    chosen: float


@dataclass(frozen=True)
class Souped:
    """Greedy checkpoint soup: the fine-tune epochs averaged, and validation before and after (or why
    there was none: ``skipped``)."""

    ingredients: list[int]  # epochs, best first
    kept: int  # the best epochs kept as candidates
    best_val_loss: float  # the best single epoch
    val_loss: float  # the soup
    best_val_accuracy: float
    val_accuracy: float
    skipped: str = ""


@dataclass(frozen=True)
class FilesSkipped:
    """Files that failed to load while training, dropped from the stream."""

    files: list[tuple[str, str]]


@dataclass(frozen=True)
class Working:
    """Inside a phase, work that is not an optimizer's epoch: computing the backbone's features of a
    split ("computing features of the train split", images done of total), fitting the linear probe
    ("fitting the linear probe", fits done of total)."""

    step: str
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class Finishing:
    """After the last epoch: a step of the run's end ("calibrating", "evaluating on the test split",
    "writing the report", "exporting"), with images done of total where it counts them."""

    step: str
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class RunFinished:
    """The run ended; ``status`` is "completed", "stopped" or "failed_to_learn" (``message`` says why)."""

    status: str
    run_dir: str
    metrics: dict[str, float] = field(default_factory=dict)
    export_dir: str | None = None
    message: str = ""


@dataclass(frozen=True)
class RunFailed:
    """The run failed; the best checkpoint so far, if any, is kept."""

    run_dir: str
    error: str
    hint: str
    checkpoint: str | None


Event = (
    RunStarted
    | PhaseStarted
    | BatchEnded
    | EpochEnded
    | CheckpointSaved
    | Interpolated
    | Souped
    | RecipeChanged
    | FilesSkipped
    | Finishing
    | RunFinished
    | RunFailed
    | BatchSizeReduced
    | Working
)
EventCallback = Callable[[Event], None]
