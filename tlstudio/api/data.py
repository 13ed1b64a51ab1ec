"""``inspect`` and ``rank``: the dataset doctor and the backbone ranking, from Python."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tlstudio.core.settings import SEED, TEST_FRACTION, VAL_FRACTION, defaults

if TYPE_CHECKING:
    from tlstudio.core.data.health import DatasetReport
    from tlstudio.core.training.ranking import RankedBackbone

PathLike = str | os.PathLike[str]
_D = defaults()


def inspect(
    data: PathLike,
    *,
    deep: bool = False,
    manifest: PathLike | None = None,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    on_progress: Callable[[int, int], None] | None = None,
) -> DatasetReport:
    """Scan a data folder (one sub-folder per class) or a labels CSV and report its health.

    As ``tlstudio inspect``: usable images per class, skipped files with reasons, duplicates and
    near-duplicates, tiny, dark, blank or blurred images, imbalance, image sizes.

    Args:
        data: the folder, or a labels CSV (``path,labels``).
        deep: decode every image fully (slower) instead of header and structure checks.
        manifest: also write the stratified train/val/test split (CSV) there, when the data is usable.
        val_fraction: the split's validation share.
        test_fraction: the split's test share.
        seed: the split's seed.
        on_progress: told ``(files done, files)`` while scanning.

    Returns:
        The ``DatasetReport``: ``usable`` says whether a run can train on it, ``problem`` why not.

    Raises:
        ValueError: the data is not there or not a folder or labels CSV, a labels CSV that cannot be
            read (``LabelsCsvError``), or fractions that leave nothing to train on; said before any work.

    Example:
        A tiny folder of three colour classes, 12 images each:

        >>> import numpy as np
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> rng = np.random.default_rng(0)
        >>> colours = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
        >>> for name, rgb in colours.items():
        ...     (Path("colours") / name).mkdir(parents=True)
        ...     for i in range(12):
        ...         pixels = np.clip(rng.normal(rgb, 35, (32, 32, 3)), 0, 255).astype("uint8")
        ...         Image.fromarray(pixels).save(f"colours/{name}/{name}_{i:03d}.png")
        >>> report = inspect("colours", manifest="split.csv")
        >>> report.usable, report.classes
        (True, {'blue': 12, 'green': 12, 'red': 12})
        >>> Path("split.csv").is_file()
        True
    """
    from tlstudio.core.data.labels_csv import data_source_problem
    from tlstudio.core.data.source import inspect_data
    from tlstudio.core.data.split import SplitConfig, make_split

    if (why := data_source_problem(data)) is not None:
        raise ValueError(why)
    split = SplitConfig(val_fraction, test_fraction, seed)  # (ValueError: fractions that leave nothing)
    report = inspect_data(data, deep=deep, on_progress=on_progress)
    if manifest is not None and report.usable:
        make_split(report.images, split, multi_label=report.task == "multi_label").save(Path(manifest))
    return report


def rank(
    data: PathLike,
    backbones: list[str],
    *,
    weights: str = _D.weights,
    image_size: int | None = _D.image_size,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RankedBackbone]:
    """Rank candidate backbones on the data before training any, as ``tlstudio rank`` does.

    Each candidate's frozen features of the training split are scored by a cross-validated linear
    probe (the estimated accuracy of a frozen-backbone model), a 10-nearest-neighbour vote and LogME,
    each with a 95 % interval; candidates the data cannot tell from the best are marked.

    Args:
        data: a data folder or a single-label labels CSV.
        backbones: names (``tlstudio backbones``) or model files.
        weights: their weights (``imagenet`` or ``none``; a model file always uses its own).
        image_size: input size for all (default: each one's own).
        val_fraction: the split's validation share (only the training images are scored).
        test_fraction: the split's test share.
        seed: the split's seed, the folds' and the bootstrap's.
        stop: set it to cancel (``tlstudio.core.cancel.Cancelled``).
        progress: told each step in words.

    Returns:
        The ``RankedBackbone`` s, best estimated accuracy first (``score``, ``interval``, ``knn``,
        ``logme``, ``tied_with_best``), then those that failed during their work, with ``error``.

    Raises:
        ValueError: unusable data, multi-label data, an empty or repeated candidate list, a class
            with too few training images.
        CandidateProblems: candidates that cannot be ranked (each named), found before any is built.

    Example:
        A tiny backbone of your own (a ``.keras`` file whose output are the features):

        >>> import keras
        >>> keras.utils.set_random_seed(0)
        >>> inputs = keras.Input((32, 32, 3))
        >>> x = keras.layers.Rescaling(1 / 255)(inputs)
        >>> x = keras.layers.Conv2D(16, 3, activation="relu")(x)
        >>> keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)).save("tiny.keras")
        >>> ranked = rank("colours", ["tiny.keras"])
        >>> ranked[0].backbone, ranked[0].error, 0.0 <= ranked[0].score <= 1.0
        ('tiny.keras', None, True)
    """
    from tlstudio.core.data.split import SplitConfig

    names = [b.strip() for b in backbones if b.strip()]
    if not names:
        raise ValueError("backbones names no backbone")
    if len(set(names)) != len(names):
        raise ValueError("backbones names a backbone twice")
    report = inspect(data, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    if report.task == "multi_label":
        raise ValueError("rank ranks backbones on single-label data only so far (one label per image)")
    if not report.usable:
        raise ValueError(f"not usable: {report.problem}")
    from tlstudio.quiet_tf import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tlstudio.core.training.ranking import rank_backbones

    return rank_backbones(
        report,
        names,
        weights=weights,
        image_size=image_size,
        split=SplitConfig(val_fraction, test_fraction, seed),
        seed=seed,
        stop=stop,
        progress=progress,
    )
