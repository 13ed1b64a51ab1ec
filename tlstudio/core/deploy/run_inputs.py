"""What an export of a finished run needs from its folder: the model, labels, size and images."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tlstudio.core.results import run_folder as files

if TYPE_CHECKING:  # numpy loads with the work, not with `tlstudio --help`
    import numpy as np


class DeployError(Exception):
    """A format could not be written or did not verify, or the run folder lacks what an export needs;
    nothing was put in place."""


@dataclass
class RunInputs:
    """A finished run's model and data, read from its folder."""

    run_dir: Path
    labels: list[str]
    image_size: int
    backbone: str
    preprocessing: str
    data_dir: Path | None  # None when no folder is known or the known one is not there now
    manifest_path: Path | None
    recorded_data_dir: Path | None = None  # the folder run.json records (or --data gave), there or not
    data_given: bool = False  # the folder came from --data, not from run.json
    thresholds: list[float] | None = None  # multi-label (sigmoid outputs): each label's threshold

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None
    ) -> RunInputs:
        """Read ``metadata.json`` and ``run.json``; the data folder may be given when it moved."""
        run = Path(run_dir)
        meta_file = run / files.METADATA
        if not (run / files.MODEL).is_file() and (run / files.CHECKPOINTS / files.BEST_WEIGHTS).is_file():
            from tlstudio.core.deploy.restore import RestoreError, export_checkpoint

            try:  # an interrupted run: its best checkpoint is exported first
                export_checkpoint(run)
            except RestoreError as err:
                raise DeployError(str(err)) from err
        if not (run / files.MODEL).is_file() or not meta_file.is_file():
            raise DeployError(f"{run} has no exported model (model.keras and metadata.json): train it first")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        info = {}
        if (run / files.RUN_JSON).is_file():
            info = json.loads((run / files.RUN_JSON).read_text(encoding="utf-8"))
        recorded = info.get("data_dir") if isinstance(info, dict) else None
        data = Path(data_dir) if data_dir else (Path(recorded) if recorded else None)
        if data is not None and not data.is_absolute() and not data.is_dir() and (run / data).is_dir():
            data = run / data  # a relative path written by hand: read from the run folder
        settings = meta.get("settings") or {}
        return cls(
            run_dir=run,
            labels=list(meta["classes"]),
            image_size=int(meta["image_size"]),
            backbone=str(meta.get("backbone", "")),
            preprocessing=str(settings.get("preprocessing") or "as the backbone needs"),
            data_dir=data if data and data.is_dir() else None,
            manifest_path=run / files.MANIFEST if (run / files.MANIFEST).is_file() else None,
            recorded_data_dir=data,
            data_given=bool(data_dir),
            thresholds=[float(t) for t in meta["thresholds"]] if meta.get("task") == "multi_label" else None,
        )

    def data_problem(self) -> str | None:
        """Why the run's images cannot be read for a check (before any conversion), or None."""
        if self.manifest_path is None:
            return f"the run has no {files.MANIFEST} (its split): there are no images to verify the export on"
        if self.data_dir is not None:
            return None
        if self.recorded_data_dir is None:
            return (
                f"no images to verify the export on: {files.RUN_JSON} records no data folder; "
                "give it with --data DIR"
            )
        where = "given with --data" if self.data_given else f"recorded in {files.RUN_JSON}"
        return (
            f"no images to verify the export on: the run's data folder {self.recorded_data_dir} "
            f"({where}) is not there now; give its new place with --data DIR"
        )

    @cached_property
    def model(self):
        """The run's ``model.keras``, loaded in safe mode and called once (exporters need that)."""
        import numpy as np

        from tlstudio.core.backbone.kerashub import load_model_file

        model = load_model_file(self.run_dir / files.MODEL)
        model(np.zeros((1, self.image_size, self.image_size, 3), np.float32))
        return model

    def _entries(self, *splits: str):
        from tlstudio.core.data.split import Manifest

        if self.manifest_path is None or self.data_dir is None:
            return []
        manifest = Manifest.load(self.manifest_path)
        for split in splits:
            entries = manifest.subset(split)
            if entries:
                return entries
        return []

    def _load(self, entries, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        from tlstudio.core.data.pipeline import load_for_model
        from tlstudio.core.data.scan import in_folder

        index = {label: i for i, label in enumerate(self.labels)}
        multi = self.thresholds is not None
        images, truth = [], []
        for entry in entries[:limit] if limit else entries:
            try:
                images.append(load_for_model(in_folder(self.data_dir, entry.path), self.image_size))
            except Exception:  # a file gone or broken since training: not used for the check
                continue
            truth.append([x in entry.labels for x in self.labels] if multi else index.get(entry.label, -1))
        if not images:
            empty = np.zeros((0, len(self.labels)) if multi else 0, np.int64)
            return np.zeros((0, self.image_size, self.image_size, 3), np.uint8), empty
        return np.stack(images).astype(np.uint8), np.asarray(truth, np.int64)

    @cached_property
    def _test(self) -> tuple[np.ndarray, np.ndarray]:
        problem = self.data_problem()
        if problem:
            raise DeployError(problem)
        images, truth = self._load(self._entries("test", "val", "train"))
        if not len(images):
            raise DeployError(
                f"no images to verify the export on: none of the run's {files.MANIFEST} images could be "
                f"read under its data folder {self.data_dir}; give the right one with --data DIR"
            )
        return images, truth

    def test_images(self) -> tuple[np.ndarray, np.ndarray]:
        """The run's test images (else validation, else training) as uint8 pixels, and their labels."""
        return self._test

    def calibration_images(self, limit: int) -> np.ndarray:
        """Up to ``limit`` training images (int8 calibration).

        Raises:
            DeployError: the data folder is not there (calibrating on nothing is no int8 model).
        """
        problem = self.data_problem()
        if problem:
            raise DeployError(problem)
        images, _ = self._load(self._entries("train", "val", "test"), limit)
        return images

    def reference_probabilities(self, images: np.ndarray) -> np.ndarray:
        """The trained Keras model's probabilities."""
        import numpy as np

        if not len(images):
            return np.zeros((0, len(self.labels)), np.float32)
        return np.asarray(self.model.predict(images.astype(np.float32), verbose=0, batch_size=32), np.float32)
