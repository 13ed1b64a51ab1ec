"""A run's classifier rebuilt from its folder: settings, manifest and a checkpoint.

Used to export the best checkpoint of a run that was interrupted (killed, out of disk, power cut)
before it exported, and to resume it. The architecture is built without downloading anything
(random weights, then the checkpoint's), so it works offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import TrainSettings


class RestoreError(Exception):
    """The run folder lacks what a rebuild needs."""


def classifier_from_run(run_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None = None):
    """The run's classifier with the weights of ``checkpoint`` (default: the best one).

    Returns:
        (model, classes, image_size, settings).

    Raises:
        RestoreError: when settings.json, manifest.csv, run.json's image size or the checkpoint is missing.
    """
    from tlstudio.core.backbone.registry import resolve_backbone
    from tlstudio.core.data.split import Manifest

    run = Path(run_dir)
    weights = Path(checkpoint) if checkpoint else run / files.CHECKPOINTS / files.BEST_WEIGHTS
    for needed in (run / files.SETTINGS, run / files.MANIFEST, weights):
        if not needed.is_file():
            raise RestoreError(f"{run} cannot be rebuilt: {needed.name} is missing")
    settings = TrainSettings.from_dict(json.loads((run / files.SETTINGS).read_text(encoding="utf-8")))
    manifest = Manifest.load(run / files.MANIFEST)
    classes = manifest.classes
    info = (
        json.loads((run / files.RUN_JSON).read_text(encoding="utf-8"))
        if (run / files.RUN_JSON).is_file()
        else {}
    )
    size = info.get("image_size") or settings.image_size or resolve_backbone(settings.backbone).default_size
    model = build_architecture(settings, len(classes), int(size), multi_label=manifest.multi_label)
    model.load_weights(weights)
    return model, classes, int(size), settings


def build_architecture(
    settings: TrainSettings, num_classes: int, image_size: int, *, multi_label: bool = False
):
    """The run's classifier with random weights (nothing is downloaded: weights come after).

    Args:
        settings: the run's settings (backbone, head, preprocessing, cut).
        num_classes: outputs of the head.
        image_size: the square input size the run trained at.
        multi_label: sigmoid outputs.

    Returns:
        An uncompiled classifier in the current Keras dtype policy.
    """
    from tlstudio.core.backbone.classifier import classifier_for
    from tlstudio.core.backbone.registry import build_backbone, resolve_backbone

    spec = resolve_backbone(settings.backbone)
    # the weights are loaded after: a skeleton needs no download
    skeleton = "none" if spec.reinitialises else settings.weights
    backbone = build_backbone(spec, weights=skeleton, image_size=settings.image_size, cut_at=settings.cut_at)
    return classifier_for(backbone, spec, settings, num_classes, image_size, multi_label=multi_label)


def float32_twin(model, settings: TrainSettings, num_classes: int, image_size: int, *, multi_label=False):
    """The same classifier computing in float32, holding ``model``'s weights: what a mixed-precision
    run evaluates and exports (a served model needs no float16, and converters and CPUs prefer float32).

    Returns:
        The float32 classifier (``model`` is left as it is).
    """
    import keras

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        twin = build_architecture(settings, num_classes, image_size, multi_label=multi_label)
    finally:
        keras.config.set_dtype_policy(policy)
    twin.set_weights(model.get_weights())  # (variables are float32 under mixed precision too)
    return twin


def export_checkpoint(run_dir: str | os.PathLike[str]) -> Path:
    """Export an interrupted run's best checkpoint into its folder (saved_model, model.keras, labels,
    metadata), verified like any export. Returns the run folder."""
    from tlstudio.core.deploy.export import export_model

    run = Path(run_dir)
    model, classes, size, settings = classifier_from_run(run)
    metadata = {
        "classes": classes,
        "image_size": size,
        "backbone": settings.backbone,
        "settings": settings.to_dict(),
        "exported_from": "the best checkpoint of an interrupted run",
    }
    from tlstudio.core.data.split import Manifest

    if Manifest.load(run / files.MANIFEST).multi_label:  # sigmoid outputs: the thresholds go along
        from tlstudio.core.settings import MULTI_LABEL_THRESHOLD

        tuned = run / files.THRESHOLDS
        named = json.loads(tuned.read_text(encoding="utf-8")) if tuned.is_file() else {}
        metadata |= {
            "task": "multi_label",
            "thresholds": [float(named.get(x, MULTI_LABEL_THRESHOLD)) for x in classes],
        }
        if (platt := run / files.CALIBRATION).is_file():  # the thresholds were tuned after it
            from tlstudio.core.backbone.classifier import scale_outputs

            fitted = json.loads(platt.read_text(encoding="utf-8"))
            scale_outputs(
                model, *zip(*[(fitted[x]["scale"], fitted[x]["shift"]) for x in classes], strict=True)
            )
    export_model(model, run, labels=classes, image_size=size, metadata=metadata)
    return run
