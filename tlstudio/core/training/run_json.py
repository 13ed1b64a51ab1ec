"""What ``run.json`` says of a run as it stands: its state, its data, what its optional steps did."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tlstudio.core.training import distribution

if TYPE_CHECKING:
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.training.run_state import RunState


def run_record(
    session: RunState,
    status: str,
    started: float,
    manifest: Manifest | None,
    size: int | None,
    metrics: dict[str, Any] | None = None,
    message: str = "",
) -> dict[str, Any]:
    """The contents of a run's ``run.json`` (``TrainingSession.write_status`` writes it atomically).

    Args:
        session: the run.
        status: its status now (``core.vocabulary.RunStatus``).
        started: when it started (``time.time()``).
        manifest: its split, once made.
        size: its input size, once known.
        metrics: its final figures, when it ended.
        message: why it ended as it did, in words.
    """
    data: dict[str, Any] = {
        "status": status,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 2),
        "device": session.device_words,
        "batch_size": session.settings.batch_size,  # after any halving (memory.run_fitting_memory)
        "data_dir": str(session.data_dir.resolve()),
        "data": str(session.data_source.resolve()),  # the folder, or the labels CSV in it
        "backbone": session.settings.backbone,
        "checkpoint": str(session.checkpoint) if session.checkpoint.is_file() else None,
        "best_epoch": session.best_epoch,
        "class_weights": session.class_weights,  # None: unweighted (multi-label: each positive's weight)
        "skipped_at_split": session.skipped_at_split,  # unusable files of the folder, left out of the split
        "skipped_while_training": [{"path": p, "reason": r} for p, r in session.load_errors.items()],
    }
    if session.peft is not None:  # --peft: the mode, and parameters trained against a full fine-tune
        data["peft"] = session.peft.to_dict()
    if session.small_folder:  # the small-folder rule moved validation into training (small_folder.py)
        data["small_folder"] = session.small_folder
    if session.soup is not None:  # the greedy checkpoint soup (soup.py), or why it was skipped
        data["soup"] = {k: v for k, v in session.soup.items() if k != "tried"}
    if session.probe_features:  # which features the probe read, and why (block_tokens.py)
        data["probe_features"] = dict(zip(("used", "why"), session.probe_features, strict=True))
    if manifest is not None:
        data.update(
            manifest_fingerprint=manifest.fingerprint(),
            classes=manifest.classes,
            image_size=size,
            task=manifest.task,
        )
    if distribution.is_multi_worker(session.strategy):
        data["cluster"] = distribution.describe_cluster(session.strategy)
    if metrics:
        data["metrics"] = metrics
    if message:
        data["message"] = message
    return data
