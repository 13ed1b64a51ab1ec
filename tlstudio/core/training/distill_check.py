"""A distilled student beside its teacher on the test split: agreement, accuracy, latency and size.

Both are the exported SavedModels (what ``predict``, ``evaluate`` and every export serve); the
teacher's answers are the ones cached when the student was trained (``teacher_probabilities.npz``).
Latency is the median of single-image calls of each SavedModel's serving signature, on this machine.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from tlstudio.core import atomic
from tlstudio.core.data.imagefile import ImageProblem
from tlstudio.core.data.pipeline import load_for_model
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import Manifest
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import wilson_interval

LATENCY_CALLS = 20  # timed single-image calls per model, after WARM_UP_CALLS untimed ones
WARM_UP_CALLS = 3


def compare(teacher_run: str | os.PathLike[str], student_run: str | os.PathLike[str]) -> dict[str, object]:
    """The student against its teacher on the test split of their shared manifest.

    Args:
        teacher_run: the teacher's run folder.
        student_run: the student's run folder (exported, with ``teacher_probabilities.npz``).

    Returns:
        JSON-ready: ``test_images``, ``agreement`` and its 95% Wilson interval, ``teacher`` and
        ``student`` each with ``accuracy`` (and interval), ``latency_ms``, ``model_bytes``,
        ``parameters``; and the ratios ``size_ratio``, ``latency_ratio`` (student / teacher).
        No test images: only latency and size.
    """
    from tlstudio.core.results.evaluation import load_exported

    teacher_dir, student_dir = Path(teacher_run), Path(student_run)
    cached = np.load(student_dir / files.TEACHER_PROBABILITIES)
    row_of = {str(p): i for i, p in enumerate(cached["paths"])}
    info = json.loads((student_dir / files.RUN_JSON).read_text(encoding="utf-8"))
    data = Path(info["data_dir"])
    manifest = Manifest.load(student_dir / files.MANIFEST)
    student = load_exported(student_dir)
    teacher = load_exported(teacher_dir)
    same, right_student, right_teacher, sample = [], [], [], None
    for entry in manifest.subset("test"):
        row = row_of.get(entry.path)
        if row is None or not cached["loaded"][row]:
            continue
        try:
            pixels = load_for_model(in_folder(data, entry.path), student.image_size)
        except (ImageProblem, OSError, ValueError):
            continue
        sample = pixels if sample is None else sample
        mine = int(np.argmax(student.predict(pixels[None])[0]))
        theirs = int(np.argmax(cached["probabilities"][row]))
        label = int(cached["labels"][row])
        same.append(mine == theirs)
        right_student.append(mine == label)
        right_teacher.append(theirs == label)
    out: dict[str, object] = {"test_images": len(same)}
    if same:
        out |= {"agreement": float(np.mean(same)), "agreement_interval": _interval(same)}
    sides = {}
    for name, model, folder, right in (
        ("teacher", teacher, teacher_dir, right_teacher),
        ("student", student, student_dir, right_student),
    ):
        side: dict[str, object] = {
            "backbone": _backbone(folder),
            "image_size": model.image_size,
            "latency_ms": latency_ms(model, sample),
            "model_bytes": _bytes(folder / files.MODEL),
            "parameters": parameters(model),
        }
        if right:
            side |= {"accuracy": float(np.mean(right)), "accuracy_interval": _interval(right)}
        sides[name] = side
    out |= sides
    t_bytes, s_bytes = _bytes(teacher_dir / files.MODEL), _bytes(student_dir / files.MODEL)
    if t_bytes and s_bytes:
        out["size_ratio"] = s_bytes / t_bytes
    t_ms, s_ms = float(sides["teacher"]["latency_ms"]), float(sides["student"]["latency_ms"])  # type: ignore[arg-type]
    out["latency_ratio"] = s_ms / t_ms if t_ms else None
    return out


def latency_ms(model, sample: np.ndarray | None) -> float:
    """Median milliseconds of one single-image call of an export's serving signature.

    Args:
        model: an ``ExportedModel``.
        sample: a uint8 image (any size: the model resizes inside); None: a random one.
    """
    if sample is None:
        sample = np.random.default_rng(0).integers(0, 256, (model.image_size, model.image_size, 3), np.uint8)
    batch = sample[None]
    for _ in range(WARM_UP_CALLS):
        model.predict(batch)
    times = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        model.predict(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def parameters(model) -> int | None:
    """The weights an export holds (its SavedModel's variables), or None when it does not say."""
    variables = getattr(model._restored, "variables", None)
    if variables is None:
        return None
    return int(sum(int(np.prod(v.shape)) for v in variables))


def record(
    student_run: str | os.PathLike[str],
    teacher_run: str | os.PathLike[str],
    settings,
    unlabelled: str | os.PathLike[str] | None,
    comparison: dict[str, object],
) -> None:
    """Name the teacher, the distillation's settings and the comparison in the student's ``run.json``
    (and the agreement in ``metrics.json``)."""
    run = Path(student_run)
    info = json.loads((run / files.RUN_JSON).read_text(encoding="utf-8"))
    info["distilled_from"] = str(Path(teacher_run).resolve())
    info["distillation"] = settings.to_dict() | {
        "unlabelled": str(Path(unlabelled).resolve()) if unlabelled is not None else None
    }
    if comparison:
        info["teacher_comparison"] = comparison
    atomic.write_json(run / files.RUN_JSON, info)
    if "agreement" in comparison and (run / files.METRICS).is_file():
        metrics = json.loads((run / files.METRICS).read_text(encoding="utf-8"))
        interval: list[float] = comparison["agreement_interval"]  # type: ignore[assignment]
        metrics |= {"test_agreement": comparison["agreement"], "test_agreement_low": interval[0]}
        metrics["test_agreement_high"] = interval[1]
        atomic.write_json(run / files.METRICS, metrics)


def describe(c: dict) -> str:
    """The student beside its teacher (``compare``'s result), as lines of text."""

    def accuracy(side: dict) -> str:
        if "accuracy" not in side:
            return "—"
        low, high = side["accuracy_interval"]
        return f"{side['accuracy']:.3f} ({low:.3f}–{high:.3f})"

    def size(side: dict) -> str:
        return "—" if not side.get("model_bytes") else f"{side['model_bytes'] / 1e6:.2f} MB"

    t, s = c["teacher"], c["student"]
    lines = [f"Student vs teacher on {c['test_images']} test images (95% intervals in brackets):"]
    if "agreement" in c:
        low, high = c["agreement_interval"]
        lines.append(f"  top-1 agreement with the teacher: {c['agreement']:.3f} ({low:.3f}–{high:.3f})")
    width = max(len(str(t["backbone"])), len(str(s["backbone"])), 8)
    lines.append(f"  {'':8}  {'backbone':<{width}}  {'accuracy':<22}  {'latency':>10}  {'size':>10}")
    for name, side in (("teacher", t), ("student", s)):
        lines.append(
            f"  {name:8}  {side['backbone']!s:<{width}}  {accuracy(side):<22}  "
            f"{side['latency_ms']:>7.2f} ms  {size(side):>10}"
        )
    ratios = []
    if c.get("latency_ratio"):
        ratios.append(f"latency × {c['latency_ratio']:.2f}")
    if c.get("size_ratio"):
        ratios.append(f"size × {c['size_ratio']:.2f}")
    if ratios:
        lines.append("  student / teacher: " + ", ".join(ratios))
    return "\n".join(lines)


def _interval(hits: list[bool]) -> list[float]:
    low, high = wilson_interval(int(sum(hits)), len(hits))
    return [low, high]


def _bytes(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _backbone(folder: Path) -> str | None:
    try:
        return json.loads((folder / files.RUN_JSON).read_text(encoding="utf-8")).get("backbone")
    except (OSError, ValueError):
        return None
