"""Try a run's model on your own images: the top classes, how far its confidence can be trusted, and
where it looked (Grad-CAM), from one forward and backward pass per image.

The confidence is the model's probability for its top class; the run says whether that probability
was calibrated (temperature scaling on the validation split, baked into the model). Beside it stands
what the test split says: of the test images the model was at least that sure of, how many it got
right, with a 95 % interval.

Example:
    >>> tryout = Tryout(Path("runs/first"))  # doctest: +SKIP
    >>> verdict = tryout.classify("photo.jpg")  # doctest: +SKIP
    >>> verdict.top[0]  # doctest: +SKIP
    ('cat', 0.93)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tlstudio.core.data.imagefile import ImageProblem, load_rgb
from tlstudio.core.data.pipeline import load_for_model, resize_for_model
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.metrics import wilson_interval
from tlstudio.core.results.run_history import read_json
from tlstudio.core.wording import counted

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Verdict:
    """What the model says of one image (``error``: why it could not be read)."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    heat: np.ndarray | None = field(default=None, repr=False)  # Grad-CAM in [0, 1], None: no map
    error: str = ""
    cam_label: str = ""  # multi-label: the label the map explains (the most probable, given or not)
    cam_choices: tuple[str, ...] = ()  # multi-label: every label (each can be explained instead)

    @property
    def label(self) -> str:
        """The predicted class ("" when the image could not be read)."""
        return self.top[0][0] if self.top else ""

    @property
    def confidence(self) -> float:
        """The top class's probability (0 when the image could not be read)."""
        return self.top[0][1] if self.top else 0.0


@dataclass(frozen=True)
class Frame:
    """One frame of a camera or a video: uint8 RGB pixels of any size, and what to call it."""

    name: str  # e.g. "clip.mp4 at 1.2 s", "camera frame 12"
    pixels: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class TestRecord:
    """How often the model was right on the test split when at least this confident."""

    right: int
    total: int
    low: float
    high: float

    def words(self, confidence: float) -> str:
        """One phrase for the panel (``confidence``: the level the record was counted at)."""
        if not self.total:
            return f"no test image was predicted with confidence ≥ {confidence:.2f}"
        return (
            f"on the test split it was right on {self.right} of {counted(self.total, 'image')} it was at "
            f"least {confidence:.2f} sure of (95 % interval {self.low:.2f}–{self.high:.2f})"
        )


class Tryout:
    """A run's classifier, ready to try images on (load once, then ``classify`` per image).

    Args:
        run_dir: a run folder with ``model.keras`` (a finished or stopped run).

    Raises:
        FileNotFoundError: the run has no model (it failed, or was interrupted: resume it first).
    """

    def __init__(self, run_dir: str | os.PathLike[str]):
        from tlstudio.core.backbone.kerashub import load_model_file
        from tlstudio.core.results.gradcam import GradCam, GradCamError

        self.run_dir = Path(run_dir)
        model_file = self.run_dir / files.MODEL
        if not model_file.is_file():
            raise FileNotFoundError(
                f"{self.run_dir.name} has no model.keras: train it to the end (or resume it)"
            )
        self.labels = (self.run_dir / files.LABELS).read_text(encoding="utf-8").splitlines()
        self.model = load_model_file(model_file)
        self.image_size = int(self.model.inputs[0].shape[1])
        metrics = read_json(self.run_dir / files.METRICS)
        self.calibrated = "temperature" in metrics
        self.predictions = read_json(self.run_dir / files.EVALUATION).get("predictions") or []
        self.thresholds: dict[str, float] = read_json(self.run_dir / files.THRESHOLDS)  # multi-label only
        try:
            self.cam: GradCam | None = GradCam(self.model)
            self.cam_problem = ""
        except GradCamError as err:
            self.cam, self.cam_problem = None, str(err)

    def classify(self, path: str | os.PathLike[str], top: int = 3) -> Verdict:
        """The top classes (and the Grad-CAM map of the first) for one image file."""
        try:
            pixels = load_for_model(path, self.image_size)
        except (ImageProblem, OSError) as err:
            return Verdict(str(path), error=str(err))
        return self._verdict(str(path), pixels, top)

    def classify_frame(self, frame: Frame, top: int = 3) -> Verdict:
        """The same for a camera or video frame (resized as training resizes)."""
        return self._verdict(frame.name, resize_for_model(frame.pixels, self.image_size), top)

    def _verdict(self, name: str, pixels: np.ndarray, top: int) -> Verdict:
        probs = np.asarray(self.model(pixels[None].astype(np.float32), training=False))[0]
        order = np.argsort(-probs)[:top]
        heat = self.cam.heatmap(pixels, int(order[0]))[0] if self.cam is not None else None
        cam_label = self.labels[int(order[0])] if self.thresholds and heat is not None else ""
        if self.thresholds:  # multi-label: every label at or above its threshold, most probable first
            order = [i for i in np.argsort(-probs) if probs[i] >= self.thresholds.get(self.labels[i], 0.5)]
        choices = tuple(self.labels) if cam_label else ()
        return Verdict(name, [(self.labels[i], float(probs[i])) for i in order], heat, "", cam_label, choices)

    def heat_for(self, path: str | os.PathLike[str], label: str) -> np.ndarray:
        """The Grad-CAM map of one image file for one label (multi-label: any label, given or not).

        Raises:
            ValueError: an unknown label, or a model without a map (``cam_problem`` says why).
            ImageProblem: the image cannot be read.
        """
        if self.cam is None:
            raise ValueError(f"no Grad-CAM: {self.cam_problem}")
        if label not in self.labels:
            raise ValueError(f"unknown label {label!r}")
        return self.cam.heatmap(load_for_model(path, self.image_size), self.labels.index(label))[0]

    def test_record(self, confidence: float) -> TestRecord:
        """Right answers among the test images predicted at least this confidently."""
        sure = [p for p in self.predictions if float(p.get("confidence", 0.0)) >= confidence]
        right = sum(1 for p in sure if p.get("true") == p.get("predicted"))
        low, high = wilson_interval(right, len(sure))
        return TestRecord(right, len(sure), low, high)

    def confidence_words(self, verdict: Verdict) -> str:
        """The confidence, whether it was calibrated, and the test split's record at that level (for a
        multi-label model: the labels given, each at or above its threshold)."""
        if self.thresholds:
            given = ", ".join(f"{label} {p:.2f}" for label, p in verdict.top)
            return (
                f"labels at or above their thresholds (tuned on the validation split): {given}"
                if given
                else "no label reaches its threshold (tuned on the validation split)"
            )
        how = (
            "calibrated on the validation split"
            if self.calibrated
            else "not calibrated (turn on Calibrate for a calibrated probability)"
        )
        level = math.floor(verdict.confidence * 20) / 20  # in steps of 0.05: enough test images to count
        record = self.test_record(level).words(level)
        return f"{verdict.label}: probability {verdict.confidence:.2f}, {how}; {record}"


def overlay_for(source: str | os.PathLike[str] | np.ndarray, heat: np.ndarray, size: int = 320) -> np.ndarray:
    """The image (a file, or uint8 RGB pixels such as a frame; at most ``size`` px on its long side)
    with the heat map blended over it."""
    from PIL import Image

    from tlstudio.core.results.gradcam import overlay

    image = (
        Image.fromarray(np.asarray(source, np.uint8)) if isinstance(source, np.ndarray) else load_rgb(source)
    )
    scale = size / max(image.size)  # small images are enlarged (pixels kept sharp), large ones shrunk
    shape = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR
    return overlay(np.asarray(image.resize(shape, resample), dtype=np.uint8), heat)


def image_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """The image files among ``paths``, folders opened (their images, sorted, one level deep)."""
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found.extend(sorted(p for p in given.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif given.is_file():
            found.append(given)
    return found
