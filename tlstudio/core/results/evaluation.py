"""Score an exported model: load it with plain TensorFlow, predict files, evaluate a folder."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tlstudio.core.data.health import inspect_folder
from tlstudio.core.data.imagefile import ImageProblem
from tlstudio.core.data.pipeline import load_for_model
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import Manifest
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import cell_predictions, classification_metrics, ordered_errors
from tlstudio.core.settings import PREDICT_TOP

BATCH = 64


@dataclass
class ExportedModel:
    """A SavedModel written by ``export_model``, with its labels and input size."""

    path: Path
    labels: list[str]
    image_size: int
    task: str = "single_label"  # labels_csv.TaskKind: multi_label gives a probability per label
    thresholds: list[float] | None = None  # multi-label: each label's decision threshold
    _signature: object = field(repr=False, default=None)
    _restored: object = field(repr=False, default=None)  # keeps the signature's variables alive

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of uint8 RGB images."""
        out = self._signature(images=tf.constant(pixels.astype(np.float32)))
        return out["output_0"].numpy()


def check_export_set(saved: Path) -> None:
    """Raise ValueError when the files beside ``saved`` belong to another export than the SavedModel."""
    inside, beside = saved / "assets" / files.METADATA, saved.parent / files.METADATA
    if not (inside.is_file() and beside.is_file()):
        return
    a = json.loads(inside.read_text(encoding="utf-8")).get("export_id")
    b = json.loads(beside.read_text(encoding="utf-8")).get("export_id")
    if a and b and a != b:
        raise ValueError(
            f"the export in {saved.parent} is incomplete: its replacement was interrupted, so "
            "saved_model/ and metadata.json belong to different exports. Export it again"
        )


def load_exported(path: str | os.PathLike[str]) -> ExportedModel:
    """Open an export: a ``saved_model`` folder, or a run / export folder holding one."""
    path = Path(path)
    saved = path / files.SAVED_MODEL if (path / files.SAVED_MODEL / "saved_model.pb").is_file() else path
    if not (saved / "saved_model.pb").is_file():
        raise FileNotFoundError(f"no SavedModel in {path} (expected saved_model.pb or saved_model/)")
    check_export_set(saved)
    labels_file = saved / "assets" / files.LABELS
    if not labels_file.is_file():
        labels_file = saved.parent / files.LABELS
    labels = labels_file.read_text(encoding="utf-8").splitlines()
    loaded = tf.saved_model.load(str(saved))
    signature = loaded.signatures["serving_default"]
    size = _input_size(saved)
    if size is None:
        raise FileNotFoundError(
            f"no metadata.json in {saved / 'assets'} or beside {saved}: input size unknown"
        )
    task, thresholds = _task(saved, labels)
    return ExportedModel(saved, labels, int(size), task, thresholds, signature, loaded)


def _task(saved: Path, labels: list[str]) -> tuple[str, list[float] | None]:
    """An export's task kind and, multi-label, its thresholds (``thresholds.json`` in its assets or
    beside it; the settings' default threshold for a label it does not name)."""
    from tlstudio.core.settings import MULTI_LABEL_THRESHOLD

    for folder in (saved / "assets", saved.parent):
        if (folder / files.THRESHOLDS).is_file():
            named = json.loads((folder / files.THRESHOLDS).read_text(encoding="utf-8"))
            return "multi_label", [float(named.get(x, MULTI_LABEL_THRESHOLD)) for x in labels]
    for meta in (saved / "assets" / files.METADATA, saved.parent / files.METADATA):
        if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("task") == "multi_label":
            return "multi_label", [MULTI_LABEL_THRESHOLD] * len(labels)
    return "single_label", None


def _input_size(saved: Path) -> int | None:
    """The input size an export says: a run's ``metadata.json`` (in the SavedModel's assets or beside
    it), or the description ``export --format saved_model`` writes beside it (``model.json``)."""
    for meta in (saved / "assets" / files.METADATA, saved.parent / files.METADATA):
        if meta.is_file():
            return int(json.loads(meta.read_text(encoding="utf-8"))["image_size"])
    description = saved.parent / files.EXPORT_DESCRIPTION
    if description.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return int(json.loads(description.read_text(encoding="utf-8"))["input"]["image_size"])
    return None


@dataclass
class Evaluation:
    """Metrics of a model on a set of labelled images (see ``metrics.classification_metrics``)."""

    labels: list[str]
    metrics: dict[str, Any]  # JSON-ready, see classification_metrics
    num_images: int
    skipped: list[dict[str, str]]
    predictions: list[dict[str, object]]  # path, true, predicted, confidence, p_true
    y_true: np.ndarray = field(repr=False, default=None)
    probs: np.ndarray = field(repr=False, default=None)

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy."""
        return float(self.metrics["accuracy"])

    @property
    def confusion_matrix(self) -> list[list[int]]:
        """Rows: true class, columns: predicted, in ``labels`` order."""
        return self.metrics["confusion_matrix"]

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per class."""
        return self.metrics["per_class"]

    def cell(self, true: str, predicted: str) -> list[dict[str, object]]:
        """The predictions behind one confusion-matrix cell."""
        return cell_predictions(self.predictions, true, predicted)

    def errors(self, order: str = "confidently_wrong") -> list[dict[str, object]]:
        """See ``ordered_errors``."""
        return ordered_errors(self.predictions, order)

    def to_dict(self, with_predictions: bool = False) -> dict[str, object]:
        """JSON-ready form."""
        data = {
            **self.metrics,
            "labels": self.labels,
            "num_images": self.num_images,
            "skipped": self.skipped,
        }
        if with_predictions:
            data["predictions"] = self.predictions
        return data


def evaluate_folder(
    model: ExportedModel,
    data_dir: str | os.PathLike[str],
    *,
    manifest: Manifest | None = None,
    split: str | None = None,
) -> Evaluation:
    """Evaluate on every usable image of ``data_dir`` — a folder or a labels CSV — (or one split of a
    manifest). A multi-label model gives a ``MultiLabelEvaluation``.

    Raises:
        ValueError: data whose task kind is not the model's, labels it does not know, nothing readable.
    """
    from tlstudio.core.data.labels_csv import data_root, is_labels_csv, read_labels_csv

    source, data_dir = Path(data_dir), data_root(data_dir)
    table = read_labels_csv(source, training=False) if is_labels_csv(source) and manifest is None else None
    multi = (
        manifest.multi_label if manifest is not None else table is not None and table.task == "multi_label"
    )
    if multi != (model.task == "multi_label"):
        kind = "multi-label" if model.task == "multi_label" else "single-label"
        raise ValueError(f"{source} is {'multi' if multi else 'single'}-label data; the model is {kind}")
    if multi:
        from tlstudio.core.results.multilabel_evaluation import evaluate_multilabel_items

        if manifest is not None:
            items = [(e.path, e.labels) for e in (manifest.subset(split) if split else manifest.entries)]
        else:
            items = list(table.rows)
        return evaluate_multilabel_items(
            model.predict, model.labels, model.thresholds, model.image_size, data_dir, items
        )
    skipped: list[dict[str, str]] = []
    if table is not None:
        items = [(rel, labels[0]) for rel, labels in table.rows]
    elif manifest is not None:
        items = [(e.path, e.label) for e in (manifest.subset(split) if split else manifest.entries)]
    else:
        report = inspect_folder(data_dir)
        items = [(r.path, r.label) for r in report.images]
        skipped = [{"path": s.path, "reason": s.reason} for s in report.skipped]
    return evaluate_items(model.predict, model.labels, model.image_size, data_dir, items, skipped)


def evaluate_items(
    predict: Callable[[np.ndarray], np.ndarray],
    labels: list[str],
    image_size: int,
    data_dir: str | os.PathLike[str],
    items: list[tuple[str, str]],
    skipped: list[dict[str, str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate ``predict`` (uint8 RGB batch → probabilities) on (relative path, label) pairs;
    ``progress(done, total)`` after each batch."""
    data_dir = Path(data_dir)
    skipped = list(skipped or [])
    unknown = sorted({label for _, label in items} - set(labels))
    if unknown:
        raise ValueError(
            f"classes not known to the model: {', '.join(unknown)} (it knows {', '.join(labels)})"
        )
    index = {name: i for i, name in enumerate(labels)}
    y_true, y_prob, kept = [], [], []
    for start in range(0, len(items), BATCH):
        pixels = []
        for rel, label in items[start : start + BATCH]:
            try:
                pixels.append(load_for_model(in_folder(data_dir, rel), image_size))
            except (ImageProblem, OSError) as err:
                skipped.append({"path": rel, "reason": str(err)})
                continue
            y_true.append(index[label])
            kept.append(rel)
        if pixels:
            y_prob.append(np.asarray(predict(np.stack(pixels))))
        if progress is not None:
            progress(min(start + BATCH, len(items)), len(items))
    if not kept:
        raise ValueError("no usable images to evaluate")
    probs = np.concatenate(y_prob)
    return summarize_predictions(labels, np.array(y_true), probs, kept, skipped)


def summarize_predictions(labels, y_true, probs, paths, skipped=()) -> Evaluation:
    """Every metric, and one prediction record per image, from probabilities."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs)
    y_pred = probs.argmax(axis=1)
    predictions = [
        {
            "path": p,
            "true": labels[t],
            "predicted": labels[q],
            "confidence": float(probs[i, q]),
            "p_true": float(probs[i, t]),
        }
        for i, (p, t, q) in enumerate(zip(paths, y_true, y_pred, strict=True))
    ]
    return Evaluation(
        labels=list(labels),
        metrics=classification_metrics(y_true, probs, list(labels)),
        num_images=len(paths),
        skipped=list(skipped),
        predictions=predictions,
        y_true=y_true,
        probs=probs,
    )


def predict_files(
    model: ExportedModel, files: list[str | os.PathLike[str]], top: int = PREDICT_TOP
) -> list[dict]:
    """Top classes with probabilities for each image file (or the reason it could not be read); for a
    multi-label model, the labels at or above their thresholds and every label's probability."""
    out = []
    for file in files:
        try:
            pixels = load_for_model(file, model.image_size)[None]
        except (ImageProblem, OSError) as err:
            out.append({"path": str(file), "error": str(err)})
            continue
        probs = model.predict(pixels)[0]
        order = np.argsort(-probs)[:top]
        if model.task == "multi_label":  # every label at or above its threshold, most probable first
            given = [i for i in np.argsort(-probs) if probs[i] >= model.thresholds[i]]
            out.append(
                {
                    "path": str(file),
                    "labels": [{"label": model.labels[i], "probability": float(probs[i])} for i in given],
                    "probabilities": {x: float(p) for x, p in zip(model.labels, probs, strict=True)},
                    "thresholds": dict(zip(model.labels, model.thresholds, strict=True)),
                }
            )
            continue
        out.append(
            {
                "path": str(file),
                "top": [{"label": model.labels[i], "probability": float(probs[i])} for i in order],
            }
        )
    return out
