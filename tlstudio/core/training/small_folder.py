"""The small-folder rule: when validation would hold too few images to choose anything, they train too.

At 8 images a class, a 15% validation split holds one image a class: the best epoch, early stopping and
WiSE-FT's α chosen on five images are noise, and they cost a fifth of the labels an expert's script
would train on. So a small folder trains on every image not in test; the probe still chooses its L2 by
cross-validation on the training images, the fine-tune budget comes from its rule, and the test split
stays held out for the honest figure (``SMALL_VAL_PER_CLASS`` in ``core.settings``).
"""

from __future__ import annotations

from dataclasses import replace

from tlstudio.core.data.split import Manifest, ManifestEntry  # noqa: F401 (the example)
from tlstudio.core.settings import SMALL_VAL_PER_CLASS, TrainSettings


def apply_small_folder_rule(manifest: Manifest, settings: TrainSettings) -> tuple[Manifest, str | None]:
    """The manifest a run trains on, and why it differs from the one given (None: it does not).

    Args:
        manifest: the split as made or given.
        settings: the run's settings (``small_folder_val``: ``train`` applies the rule, ``keep`` not).

    Returns:
        The manifest with its validation images moved to training when the folder is small, and the
        sentence that says so; or the manifest as it was and None.

    Example:
        >>> entries = [ManifestEntry(f"{c}/{i}.png", "0", c, "val" if i == 0 else "train")
        ...            for c in "ab" for i in range(6)]
        >>> moved, why = apply_small_folder_rule(Manifest(tuple(entries)), TrainSettings("MobileNetV2"))
        >>> len(moved.subset("val")), len(moved.subset("train")), why.startswith("a small folder")
        (0, 12, True)
    """
    val = manifest.subset("val")
    if settings.small_folder_val != "train" or manifest.multi_label or not val:
        return manifest, None
    classes = manifest.classes
    if len(val) >= SMALL_VAL_PER_CLASS * len(classes):
        return manifest, None
    moved = Manifest(
        tuple(replace(e, split="train") if e.split == "val" else e for e in manifest.entries),
        manifest.multi_label,
    )
    why = (
        f"a small folder: its {len(val)} validation image{'s' if len(val) != 1 else ''} "
        f"(fewer than {SMALL_VAL_PER_CLASS} a class) train too; the probe's regularisation is chosen by "
        "cross-validation on the training images, the fine-tune length by rule, and the test split stays "
        "held out (--small-folder-val keep holds validation out)"
    )
    return moved, why
