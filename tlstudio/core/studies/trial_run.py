"""One sweep trial in its own process: an ordinary run (no test split, no export) and its validation
scores image by image — or, with FOLDS ≥ 2, K-fold cross-validation over the split's training and
validation images, scored image by image on the folds held out; or, once the sweep is over, the best
trial exported (a cross-validated one trained once more on the split) and scored on the test split.

Run by the sweep's worker, never imported by it (TensorFlow loads here only)::

    python -m tlstudio.core.studies.trial_run train DATA RUN MANIFEST SETTINGS_JSON FOLDS RESULT PARENT_PID
    python -m tlstudio.core.studies.trial_run score DATA RUN MANIFEST RESULT PARENT_PID

RESULT is a JSON file written at the end. The process ends itself when its worker is gone (killed),
so a dead worker leaves no training behind.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from tlstudio.core import atomic

PARENT_CHECK_S = 1.0


def watch_parent(pid: int) -> None:
    """End this process (exit 137) within ``PARENT_CHECK_S`` of its worker's death."""

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(137)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def log(event) -> None:
    """A run's events into the trial's log: all but the steps within a step and the batches."""
    if type(event).__name__ != "BatchEnded" and getattr(event, "done", 0) == getattr(event, "total", 0):
        print(event, file=sys.stderr, flush=True)


def train(
    data_dir: Path, run_dir: Path, manifest_path: Path, settings_json: str, folds: int, result: Path
) -> int:
    """Train one trial's run (or its folds); write its status and per-image results to ``result``."""
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.session import TrainingSession

    settings = TrainSettings.from_dict(json.loads(settings_json))
    manifest = Manifest.load(manifest_path)
    if folds >= 2:
        atomic.write_json(result, cross_validated(settings, data_dir, run_dir, manifest, folds))
        return 0
    session = TrainingSession(
        settings, data_dir, run_dir, manifest=manifest, on_event=log, export=False, score_test=False
    )
    outcome = session.run()
    record: dict[str, object] = {"status": outcome.status, "error": outcome.error}
    if outcome.model is not None and outcome.status in ("completed", "failed_to_learn"):
        assert session.image_size is not None  # (a run with a model has its split and its size)
        record |= validation_scores(outcome.model, manifest, data_dir, session.image_size)
        record["image_size"] = session.image_size
    atomic.write_json(result, record)
    return 0 if "val_accuracy" in record else 1


def validation_scores(model, manifest, data_dir: Path, image_size: int) -> dict[str, object]:
    """Accuracy and log loss on the validation split, and which images were right ("1"), wrong
    ("0") or unreadable ("-"), in the manifest's order: what ties between trials are judged on."""
    import numpy as np

    from tlstudio.core.results.evaluation import evaluate_items
    from tlstudio.core.results.metrics import log_loss

    val = manifest.subset("val")
    evaluation = evaluate_items(
        lambda x: model.predict_on_batch(x.astype(np.float32)),
        manifest.classes,
        image_size,
        data_dir,
        [(e.path, e.label) for e in val],
    )
    paths = [p["path"] for p in evaluation.predictions]
    right = dict(zip(paths, (evaluation.probs.argmax(1) == evaluation.y_true).tolist(), strict=True))
    return {
        "val_accuracy": float(np.mean(list(right.values()))),
        "val_loss": float(log_loss(evaluation.y_true, evaluation.probs)),
        "val_images": len(right),
        "val_correct": "".join("-" if e.path not in right else "1" if right[e.path] else "0" for e in val),
    }


def cross_validated(settings, data_dir: Path, run_dir: Path, manifest, folds: int) -> dict[str, object]:
    """K-fold cross-validation over the split's training and validation images (the test split left
    out), in ``run_dir/fold-N``; the held-out predictions pooled as the trial's per-image scores."""
    import math

    from tlstudio.core.data.split import Manifest
    from tlstudio.core.results import run_folder as files
    from tlstudio.core.results.run_history import read_json
    from tlstudio.core.training.cross_validation import cross_validate

    pool = Manifest(tuple(e for e in manifest.entries if e.split != "test"))
    summary = cross_validate(settings, data_dir, run_dir, folds, manifest=pool, on_event=log)
    unfinished = [f for f in summary["folds"] if f["test_accuracy"] is None]
    if unfinished or len(summary["folds"]) < folds:
        return {"status": "failed", "error": f"fold {unfinished[0]['fold'] if unfinished else '?'} failed"}
    held_out = {}
    for f in range(1, folds + 1):
        for p in read_json(run_dir / f"fold-{f}" / files.EVALUATION).get("predictions", []):
            held_out[p["path"]] = (p["true"] == p["predicted"], float(p["p_true"]))
    right = [held_out[e.path][0] for e in pool.entries if e.path in held_out]
    return {
        "status": "completed",
        "val_accuracy": sum(right) / len(right),
        "val_loss": -sum(math.log(max(p, 1e-7)) for _, p in held_out.values()) / len(held_out),
        "val_images": len(right),
        "val_correct": "".join(
            "-" if e.path not in held_out else "1" if held_out[e.path][0] else "0" for e in pool.entries
        ),
        "image_size": read_json(run_dir / "fold-1" / files.RUN_JSON).get("image_size"),
    }


def score(data_dir: Path, run_dir: Path, manifest_path: Path, result: Path) -> int:
    """Export the run (verified, like an interrupted run's export) and score it on its test split; a
    cross-validated trial is first trained once on the split (``run_dir/final``, exported and scored
    on the test split by the run itself)."""
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.deploy.restore import export_checkpoint
    from tlstudio.core.results import run_folder as files
    from tlstudio.core.results.evaluation import evaluate_folder, load_exported
    from tlstudio.core.results.metrics import wilson_interval

    if (run_dir / files.CROSS_VALIDATION).is_file():
        from tlstudio.core.settings import TrainSettings
        from tlstudio.core.training.session import TrainingSession

        settings = TrainSettings.from_dict(json.loads((run_dir / "fold-1" / files.SETTINGS).read_text()))
        final = run_dir / "final"
        outcome = TrainingSession(
            settings, data_dir, final, manifest=Manifest.load(manifest_path), on_event=log, overwrite=True
        ).run()
        if outcome.export_dir is None or "test_accuracy" not in outcome.metrics:
            print(f"the final run did not finish: {outcome.error or outcome.status}", file=sys.stderr)
            return 1
        keys = ("test_accuracy", "test_accuracy_low", "test_accuracy_high", "test_images", "test_macro_f1")
        atomic.write_json(result, {k: outcome.metrics[k] for k in keys} | {"run_dir": str(final)})
        return 0
    export_checkpoint(run_dir)
    manifest = Manifest.load(run_dir / files.MANIFEST)
    evaluation = evaluate_folder(load_exported(run_dir), data_dir, manifest=manifest, split="test")
    right = round(evaluation.accuracy * evaluation.num_images)
    low, high = wilson_interval(right, evaluation.num_images)
    atomic.write_json(
        result,
        {
            "test_accuracy": evaluation.accuracy,
            "test_accuracy_low": low,
            "test_accuracy_high": high,
            "test_images": evaluation.num_images,
            "test_macro_f1": evaluation.metrics["averages"]["macro"]["f1"],
        },
    )
    return 0


def main(argv: list[str]) -> int:
    """The command line of the module docstring."""
    mode, rest = argv[0], argv[1:]
    watch_parent(int(rest[-1]))
    if mode == "train":
        data, run, manifest, settings, folds, result, _ = rest
        return train(Path(data), Path(run), Path(manifest), settings, int(folds), Path(result))
    data, run, manifest, result, _ = rest
    return score(Path(data), Path(run), Path(manifest), Path(result))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
