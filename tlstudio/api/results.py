"""``evaluate``, ``predict`` and ``export``: what a trained run does, from Python."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tlstudio.core.deploy.formats import MAX_ACCURACY_DROP, MIN_AGREEMENT  # (no TensorFlow)
from tlstudio.core.settings import PREDICT_TOP

if TYPE_CHECKING:
    from tlstudio.core.deploy.formats import DeployResult
    from tlstudio.core.results.evaluation import Evaluation, ExportedModel

PathLike = str | os.PathLike[str]


def _opened(model: PathLike | ExportedModel) -> ExportedModel:
    """An export, opened unless it already is (``FileNotFoundError``, ``ValueError`` as ``load_exported``)."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    if not Path(model).exists():  # said before TensorFlow loads (seconds)
        raise FileNotFoundError(f"{model} does not exist")
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tlstudio.core.results.evaluation import load_exported

    return load_exported(model)


def evaluate(
    model: PathLike | ExportedModel,
    data: PathLike,
    *,
    manifest: PathLike | None = None,
    split: str | None = None,
) -> Evaluation:
    """Score an exported model on labelled images, as ``tlstudio evaluate`` does.

    Args:
        model: a run folder, a SavedModel folder, or an export opened before
            (``tlstudio.core.results.evaluation.load_exported``).
        data: a data folder (one sub-folder per class) or a labels CSV.
        manifest: evaluate the files of this split manifest only.
        split: with ``manifest`` (or a run folder as ``model``: its own manifest), one split:
            ``train``, ``val`` or ``test``.

    Returns:
        The ``Evaluation``: ``accuracy``, ``metrics`` (top-k, per class, macro/weighted F1, ROC AUC,
        log loss, ECE), ``confusion_matrix``, ``per_class``, ``predictions``; a multi-label model gives
        a ``MultiLabelEvaluation``.

    Raises:
        FileNotFoundError: the model is not there.
        ValueError: data that is not there, labels the model does not know, a split without a
            manifest, nothing readable.

    Example:
        The run ``train``'s example made, on its own test split:

        >>> evaluation = evaluate("runs/first", "colours", split="test")
        >>> evaluation.labels, evaluation.num_images, 0.0 <= evaluation.accuracy <= 1.0
        (['blue', 'green', 'red'], 6, True)
    """
    from tlstudio.cli.common import data_problem
    from tlstudio.core.results import run_folder as files

    if (why := data_problem(data, training=False)) is not None:
        raise ValueError(why)
    if split is not None and split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, not {split!r}")
    if manifest is not None and not Path(manifest).is_file():
        raise ValueError(f"the split {manifest} is not there (a run's manifest.csv)")
    if split is not None and manifest is None:
        own = Path(model) / files.MANIFEST if isinstance(model, (str, os.PathLike)) else None
        if own is None or not own.is_file():
            raise ValueError("split needs a manifest (a run's manifest.csv), or a run folder as model")
        manifest = own
    opened = _opened(model)
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.results.evaluation import evaluate_folder

    chosen = Manifest.load(Path(manifest)) if manifest is not None else None
    return evaluate_folder(opened, data, manifest=chosen, split=split)


def predict(model: PathLike | ExportedModel, images: list[PathLike], *, top: int = PREDICT_TOP) -> list[dict]:
    """Classify image files with an exported model, as ``tlstudio predict`` does.

    Args:
        model: a run folder, a SavedModel folder, or an export opened before.
        images: the image files.
        top: classes given per image.

    Returns:
        One dict per image, in order: ``path`` and ``top`` (``[{"label", "probability"}, …]``, most
        likely first); a multi-label model gives ``labels`` (those at or above their thresholds) and
        every label's probability; an image that cannot be read gives ``error`` instead.

    Raises:
        FileNotFoundError: the model is not there.
        ValueError: ``top`` below 1, no images, or a folder that is not an export.

    Example:
        >>> predictions = predict("runs/first", ["colours/red/red_000.png"], top=2)
        >>> predictions[0]["top"][0]["label"], len(predictions[0]["top"])
        ('red', 2)
    """
    if top < 1:
        raise ValueError("top must be at least 1")
    if not images:
        raise ValueError("no images to classify")
    opened = _opened(model)
    from tlstudio.core.results.evaluation import predict_files

    return predict_files(opened, list(images), top=top)


def export(
    run: PathLike,
    format: str = "all",
    *,
    quantize: str = "float32",
    out: PathLike | None = None,
    data: PathLike | None = None,
    uint8_io: bool = False,
    min_agreement: float = MIN_AGREEMENT,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    force: bool = False,
    stop: threading.Event | None = None,
) -> list[DeployResult]:
    """Convert a run's model and verify it in the runtime a user would use, as ``tlstudio export`` does.

    Each artefact is scored in a fresh process by its own runtime on the run's test images against
    the trained model, and put in place (``RUN/export/<format>[-<mode>]/``) only when it agrees.

    Args:
        run: the run folder.
        format: ``saved_model``, ``tflite``, ``onnx``, ``openvino``, ``tfjs``, or ``all`` (every format
            side by side, with the model card; a format that fails keeps its earlier artefact).
        quantize: ``float32``; for tflite also ``float16``, ``dynamic``, ``int8``; for openvino ``int8``.
        out: the artefact's folder (one format only).
        data: the data folder, if it moved since training.
        uint8_io: int8 tflite with uint8 input and output.
        min_agreement: float formats: least top-1 agreement with the trained model.
        max_accuracy_drop: integer formats: largest accuracy loss.
        force: export a run that did not learn all the same.
        stop: set it to cancel (nothing of the artefact under way is put in place).

    Returns:
        One ``DeployResult`` per artefact: ``status`` (``new``, ``previous``, ``failed``, ``skipped``),
        ``folder``, ``verification`` (agreement, accuracy, latency, size) and ``error``.

    Raises:
        DeployError: not a run folder, a run still training or that did not learn (without ``force``),
            bad arguments, or (one format) a conversion or verification that failed: nothing written.

    Example:
        >>> results = export("runs/first", "tflite")
        >>> results[0].status, (results[0].folder / "model.tflite").is_file()
        ('new', True)
        >>> results[0].verification.agreement >= 0.995
        True
    """
    from tlstudio.core.deploy.run_inputs import DeployError
    from tlstudio.core.results import run_folder as files

    status = files.run_status(Path(run)).get("status")
    if status is None:
        raise DeployError(f"{run} is not a run folder (no readable {files.RUN_JSON})")
    if status == "running":
        raise DeployError(f"{run} is still training: export it once the run has ended")
    if status == "failed_to_learn" and not force:
        raise DeployError(f"{run} did not learn: its model is no better than chance (force=True exports it)")
    if format == "all" and (out is not None or quantize != "float32" or uint8_io):
        raise DeployError("out, quantize and uint8_io need one format")
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tlstudio.core.deploy.export_set import export_all
    from tlstudio.core.deploy.formats import export_format

    options = {"data_dir": data, "min_agreement": min_agreement, "max_accuracy_drop": max_accuracy_drop}
    if format == "all":
        return export_all(run, stop=stop, **options)
    result = export_format(run, format, quantize=quantize, out=out, uint8_io=uint8_io, stop=stop, **options)
    return [result]
