"""What a distillation takes (``DistillSettings``) and why a teacher run, student or folder cannot be used.

Read without TensorFlow, so a command can refuse bad input in a line before any work.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import (
    DISTILL_BATCH_SIZE,
    DISTILL_EPOCHS,
    DISTILL_LEARNING_RATE,
    DISTILL_SOFT_WEIGHT,
    DISTILL_TEMPERATURE,
    SEED,
)

USABLE_TEACHER = ("completed", "stopped")  # statuses of a run that exported its model


@dataclass(frozen=True)
class DistillSettings:
    """How a student learns from its teacher.

    Args:
        student: a backbone of the registry (``MobileNetV3Small``, ``EfficientNetLite0``, ...) or a
            model file.
        student_weights: "imagenet" (the student's pretrained weights), "none" (from scratch) or a file.
        epochs: passes over the training images.
        temperature: T of the softened distributions.
        soft_weight: weight of the soft term; the hard-label cross-entropy gets ``1 - soft_weight``.
        learning_rate: Adam's rate at the start of its cosine decay.
        batch_size: images per step.
        image_size: the student's input size (None: the backbone's default).
        seed: weights, shuffling.
    """

    student: str
    student_weights: str = "imagenet"
    epochs: int = DISTILL_EPOCHS
    temperature: float = DISTILL_TEMPERATURE
    soft_weight: float = DISTILL_SOFT_WEIGHT
    learning_rate: float = DISTILL_LEARNING_RATE
    batch_size: int = DISTILL_BATCH_SIZE
    image_size: int | None = None
    seed: int = SEED

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)

    def problem(self) -> str | None:
        """Why these numbers cannot be used, or None."""
        if self.epochs < 1:
            return f"--epochs must be at least 1, not {self.epochs}"
        if not self.temperature > 0:
            return f"--temperature must be above 0, not {self.temperature}"
        if not 0.0 <= self.soft_weight <= 1.0:
            return f"--soft-weight must be between 0 and 1, not {self.soft_weight}"
        if not self.learning_rate > 0:
            return f"--learning-rate must be above 0, not {self.learning_rate}"
        if self.batch_size < 1:
            return f"--batch-size must be at least 1, not {self.batch_size}"
        if self.image_size is not None and self.image_size < 32:
            return f"--image-size must be at least 32, not {self.image_size}"
        return None


def teacher_record(teacher: str | os.PathLike[str]) -> dict:
    """The teacher's ``run.json`` ({} when there is none to read)."""
    try:
        data = json.loads((Path(teacher) / files.RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def teacher_problem(teacher: str | os.PathLike[str]) -> str | None:
    """Why ``teacher`` cannot teach: not a finished single-label run with its export and its images."""
    run = Path(teacher)
    if not run.is_dir():
        return f"{run} is not a run folder (no such folder)"
    info = teacher_record(run)
    if not info:
        return f"{run} is not a run folder: it has no readable {files.RUN_JSON}"
    if info.get("status") not in USABLE_TEACHER:
        return (
            f"{run} did not finish (status: {info.get('status', 'unknown')}): only a completed or "
            "stopped run that exported its model can teach"
        )
    if info.get("task") == "multi_label":
        return f"{run} is a multi-label run: distillation takes single-label teachers only"
    if not (run / files.SAVED_MODEL / "saved_model.pb").is_file():
        return f"{run} has no exported model ({files.SAVED_MODEL}/): `tlstudio export {run}` writes it"
    if not (run / files.MANIFEST).is_file():
        return f"{run} has no {files.MANIFEST}: the student must see the teacher's own split"
    data = info.get("data_dir")
    if not data or not Path(data).is_dir():
        return f"the teacher's images are not where it trained on them ({data}): put them back"
    return None


def distill_problem(
    teacher: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: DistillSettings,
    *,
    unlabelled: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> str | None:
    """Why a distillation cannot start (in one line), or None; the student's backbone is resolved
    last (listing Keras Applications imports Keras).

    Args:
        teacher: the teacher's run folder.
        out: the student's run folder.
        settings: the distillation's settings.
        unlabelled: a folder of extra images without labels.
        overwrite: an existing ``out`` may be emptied.
    """
    if (why := teacher_problem(teacher)) is not None:
        return why
    if (why := settings.problem()) is not None:
        return why
    target = Path(out)
    if target.resolve() == Path(teacher).resolve():
        return "--out must be a new folder, not the teacher's own run folder"
    if target.exists() and not target.is_dir():
        return f"{target} is a file, not a folder: choose another --out"
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        return f"{target} already holds files: use --overwrite to replace them, or another --out"
    if unlabelled is not None and not Path(unlabelled).is_dir():
        return f"--unlabelled {unlabelled} is not a folder"
    from tlstudio.core.backbone.registry import resolve_backbone
    from tlstudio.core.backbone.sources import BackboneError

    try:
        spec = resolve_backbone(student_name(settings.student))
    except BackboneError as err:
        return f"student: {err}"
    if settings.image_size is not None and spec.brings_own_size:
        return f"{spec.name} takes {spec.default_size} px images: leave out --image-size"
    return None


def student_name(name: str) -> str:
    """The registry's name of a student as people write it: "EfficientNet-Lite0" is ``EfficientNetLite0``."""
    from tlstudio.core.backbone import efficientnet_lite

    if name.replace("-", "").replace("_", "").lower() == efficientnet_lite.NAME.lower():
        return efficientnet_lite.NAME
    return name
