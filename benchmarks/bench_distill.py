"""Distillation: a teacher run, the student distilled from it, and the same student on hard labels only.

Run:  python benchmarks/bench_distill.py [--per-class 40] [--unlabelled 150] [--size 64]
      [--teacher EfficientNetLite0] [--student MobileNetV3Small] [--student-weights none]
      [--student-size 96] [--epochs 30] [--seeds 0] [--json FILE]

The task is drawn shapes (five classes none of the backbones saw: ``tests/factory.py``), a labelled
folder of ``--per-class`` images a class and a folder of ``--unlabelled`` more a class without labels.
The teacher is a TL Studio run with its defaults (the probe and the fine-tune sized by the data) on
``--teacher`` (EfficientNet-Lite0: ImageNet weights offline). Then, on the teacher's own split:

- distilled: ``tlstudio distill`` (soft labels at T = 4 and the hard labels; the unlabelled images
  soft only);
- soft labels without the unlabelled images: the same, on the labelled training images only;
- hard labels only: the same student, the same epochs and rate, ``--soft-weight 0`` and no unlabelled
  images (what training the small model on its own gives).

Each is scored on the test split (accuracy, top-1 agreement with the teacher) and on fresh unseen
images (``--unseen`` a class, drawn afresh, never on disk before); size is ``model.keras``, latency
the median single-image call of each SavedModel on this machine (``distill_check``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factory import SHAPES_C, draw_any, make_drawn_dataset  # noqa: E402


def unseen(per_class: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh images of the classes (label index = sorted class order)."""
    kinds = sorted(SHAPES_C)
    rng = np.random.default_rng(50_000 + seed)
    x = np.stack([draw_any(k, size, rng) for k in kinds for _ in range(per_class)])
    return x, np.repeat(np.arange(len(kinds)), per_class)


def score(run: Path, teacher_pred: np.ndarray, x, y) -> tuple[float, float]:
    """Accuracy and agreement of a student: its export, or (a run that did not learn, not exported) its
    best checkpoint rebuilt from the run folder."""
    if (run / "saved_model").is_dir():
        acc, agree, _ = accuracy_and_agreement(run, teacher_pred, x, y)
        return acc, agree
    from tlstudio.core.data.pipeline import resize_for_model
    from tlstudio.core.deploy.restore import classifier_from_run

    model, _, size, _ = classifier_from_run(run)
    pixels = np.stack([resize_for_model(img, size) for img in x]).astype(np.float32)
    pred = np.asarray(model.predict(pixels, batch_size=64, verbose=0)).argmax(1)
    return float(np.mean(pred == y)), float(np.mean(pred == teacher_pred))


def accuracy_and_agreement(
    run: Path, teacher_pred: np.ndarray | None, x, y
) -> tuple[float, float, np.ndarray]:
    """Accuracy on (x, y), agreement with ``teacher_pred``, and the predictions, from RUN/saved_model."""
    from tlstudio.core.results.evaluation import load_exported

    model = load_exported(run)
    pred = np.concatenate([model.predict(x[i : i + 64]).argmax(1) for i in range(0, len(x), 64)])
    agree = float(np.mean(pred == teacher_pred)) if teacher_pred is not None else 1.0
    return float(np.mean(pred == y)), agree, pred


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--unlabelled", type=int, default=150, help="unlabelled images a class")
    p.add_argument("--unseen", type=int, default=100, help="fresh test images a class")
    p.add_argument("--size", type=int, default=64, help="pixels of the drawn images")
    p.add_argument("--teacher", default="EfficientNetLite0")
    p.add_argument("--teacher-fine-tune-epochs", type=int, help="the teacher's phase 2 (the recipe's rule)")
    p.add_argument("--student", default="MobileNetV3Small")
    p.add_argument("--student-weights", default="none")
    p.add_argument("--student-size", type=int, default=96)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--seeds", default="0")
    p.add_argument("--json", type=Path)
    p.add_argument("--work", type=Path, help="keep (and reuse) the folders here, one per seed")
    args = p.parse_args()
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.distill import distill
    from tlstudio.core.training.distill_inputs import DistillSettings
    from tlstudio.core.training.session import TrainingSession

    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        work = args.work / f"seed{seed}" if args.work else Path(tempfile.mkdtemp(prefix="bench-distill-"))
        data, extra = work / "data", work / "unlabelled"
        if not (work / "teacher" / "run.json").is_file():  # (--work: what is done is reused)
            make_drawn_dataset(data, SHAPES_C, args.per_class, args.size, seed=seed)
            make_drawn_dataset(extra, SHAPES_C, args.unlabelled, args.size, seed=seed + 100)
            settings = TrainSettings(args.teacher, seed=seed, fine_tune_epochs=args.teacher_fine_tune_epochs)
            teacher = TrainingSession(settings, data, work / "teacher").run()
            assert teacher.status == "completed", teacher.error
        x, y = unseen(args.unseen, args.size, seed)
        t_acc, _, t_pred = accuracy_and_agreement(work / "teacher", None, x, y)
        row: dict[str, object] = {"seed": seed, "teacher_unseen_accuracy": t_acc}
        arms = (("distilled", None, extra), ("soft_labelled_only", None, None), ("hard_only", 0.0, None))
        for name, soft, folder in arms:
            settings = DistillSettings(
                args.student,
                student_weights=args.student_weights,
                epochs=args.epochs,
                learning_rate=args.learning_rate,
                image_size=args.student_size,
                seed=seed,
                **({"soft_weight": soft} if soft is not None else {}),
            )
            record = work / name / "run.json"
            if not (record.is_file() and "distillation" in json.loads(record.read_text())):
                distill(work / "teacher", work / name, settings, unlabelled=folder, overwrite=True)
            info = json.loads(record.read_text())
            acc, agree = score(work / name, t_pred, x, y)
            c = info.get("teacher_comparison", {})
            row[name] = {
                "status": info["status"],
                "seconds": info["seconds"],
                "unseen_accuracy": acc,
                "unseen_agreement": agree,
                "test_agreement": c.get("agreement"),
                "test_accuracy": c.get("student", {}).get("accuracy"),
                "teacher_test_accuracy": c.get("teacher", {}).get("accuracy"),
                "size_ratio": c.get("size_ratio"),
                "latency_ratio": c.get("latency_ratio"),
                "student": c.get("student"),
                "teacher": c.get("teacher"),
            }
        rows.append(row)
        d, o, h = row["distilled"], row["soft_labelled_only"], row["hard_only"]
        print(
            f"seed {seed}: teacher {args.teacher} unseen acc {t_acc:.3f} | {args.student} distilled "
            f"({d['status']}): unseen acc {d['unseen_accuracy']:.3f}, agreement {d['unseen_agreement']:.3f}"
            f" | without the unlabelled images ({o['status']}): {o['unseen_accuracy']:.3f}, agreement "
            f"{o['unseen_agreement']:.3f} | hard labels only ({h['status']}): "
            f"{h['unseen_accuracy']:.3f}, agreement "
            f"{h['unseen_agreement']:.3f} | size × {d['size_ratio']:.3f} "
            f"({d['student']['model_bytes'] / 1e6:.2f} / {d['teacher']['model_bytes'] / 1e6:.2f} MB), "
            f"latency × {d['latency_ratio']:.2f} ({d['student']['latency_ms']:.1f} / "
            f"{d['teacher']['latency_ms']:.1f} ms)",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
