"""Iterative stratification of multi-label data (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011).

The rarest label is dealt first: each of its (unassigned) examples goes to the split that still wants
the most of that label, ties broken by the split that wants the most examples, then at random (seeded);
every label of the example counts against that split's wants. Examples are *groups* here (identical
files and near-duplicates, ``split.look_alike_groups``), so copies never cross splits. A last pass
moves a group into any split that a label with enough groups is missing from, when another split can
spare one without losing a label itself.

Written by hand in NumPy: neither scikit-multilearn nor iterative-stratification is a dependency, and
neither keeps groups of look-alike images together.
"""

from __future__ import annotations

import numpy as np

from tlstudio.core.data.scan import ImageRecord
from tlstudio.core.settings import PSEUDO_FOLDER


def iterative_stratification(
    y: np.ndarray, sizes: np.ndarray, label_targets: np.ndarray, size_targets: np.ndarray, seed: int
) -> np.ndarray:
    """Deal groups to splits.

    Args:
        y: (groups, labels) how many images of each group carry each label.
        sizes: (groups,) images per group.
        label_targets: (splits, labels) images of each label each split should get.
        size_targets: (splits,) images each split should get.
        seed: for the ties.

    Returns:
        (groups,) the split index of each group.
    """
    rng = np.random.default_rng(seed)
    groups, labels = y.shape
    splits = len(size_targets)
    has = y > 0
    want_label = label_targets.astype(np.float64).copy()
    want_size = size_targets.astype(np.float64).copy()
    split_of = np.full(groups, -1, np.int64)
    label_key = rng.random((labels,))  # ties between equally rare labels

    def place(g: int, need: np.ndarray) -> None:
        keys = np.lexsort((rng.random(splits), -want_size, -need))
        s = int(keys[0])
        split_of[g] = s
        want_label[s] -= y[g]
        want_size[s] -= sizes[g]

    while True:
        open_ = split_of < 0
        left = (has & open_[:, None]).sum(0)
        if not left.any():
            break
        candidates = np.flatnonzero(left)
        rarest = candidates[np.lexsort((label_key[candidates], left[candidates]))[0]]
        for g in rng.permutation(np.flatnonzero(open_ & has[:, rarest])):
            place(int(g), want_label[:, rarest])
    for g in rng.permutation(np.flatnonzero(split_of < 0)):  # groups with no label
        place(int(g), np.zeros(splits))
    _fill_missing(split_of, has, label_targets)
    return split_of


def _fill_missing(split_of: np.ndarray, has: np.ndarray, label_targets: np.ndarray) -> None:
    """Move a group into each split a label should reach but does not, from a split holding two or more
    of that label's groups; only groups whose every label keeps a group in the split they leave move."""
    splits = label_targets.shape[0]
    for label in range(has.shape[1]):
        for s in range(splits):
            if label_targets[s, label] <= 0 or (has[:, label] & (split_of == s)).any():
                continue
            counts = np.array([(has[:, label] & (split_of == d)).sum() for d in range(splits)])
            for donor in np.argsort(-counts, kind="stable"):
                if counts[donor] < 2:
                    break
                movable = [
                    g
                    for g in np.flatnonzero(has[:, label] & (split_of == donor))
                    if all(
                        (has[:, other] & (split_of == donor)).sum() >= 2 for other in np.flatnonzero(has[g])
                    )
                ]
                if movable:
                    split_of[min(movable, key=lambda g: (has[g].sum(), g))] = s
                    break


def split_targets(total: int, fraction: float) -> int:
    """Images of one label (or in all) a validation or test split should get: the folder split's rule."""
    if fraction <= 0 or total < 3:
        return 0
    return max(1, round(total * fraction))


def multilabel_assignment(
    images: list[ImageRecord],
    group_of: dict[str, str],
    label_sets: list[tuple[str, ...]],
    fractions: dict[str, float],
    seed: int,
) -> dict[str, str]:
    """Which split each look-alike group goes to.

    Args:
        images: the scan's records.
        group_of: ``{path: group key}`` (``look_alike_groups``).
        label_sets: each image's labels, in ``images`` order.
        fractions: ``{"val": …, "test": …}``; train takes the rest.
        seed: the split's seed.

    Returns:
        ``{group key: split}``; a group holding a pseudo-labelled image (``PSEUDO_FOLDER/…`` beside the
        CSV: labelled by a model) goes to train, so validation and test judge only people's labels.
    """
    pseudo = {group_of[r.path] for r in images if r.path.split("/")[0] == PSEUDO_FOLDER}
    if pseudo:
        rest = [
            (r, labels)
            for r, labels in zip(images, label_sets, strict=True)
            if group_of[r.path] not in pseudo
        ]
        others = {path: g for path, g in group_of.items() if g not in pseudo}
        placed = multilabel_assignment([r for r, _ in rest], others, [x for _, x in rest], fractions, seed)
        return placed | dict.fromkeys(pseudo, "train")
    keys = sorted(set(group_of.values()))
    row = {key: i for i, key in enumerate(keys)}
    names = sorted({label for labels in label_sets for label in labels})
    column = {name: j for j, name in enumerate(names)}
    y = np.zeros((len(keys), len(names)), np.int64)
    sizes = np.zeros(len(keys), np.int64)
    for record, labels in zip(images, label_sets, strict=True):
        g = row[group_of[record.path]]
        sizes[g] += 1
        for label in labels:
            y[g, column[label]] += 1
    order = ("train", "val", "test")
    per_label = y.sum(0)
    label_targets = np.zeros((3, len(names)), np.int64)
    size_targets = np.zeros(3, np.int64)
    for s, split in enumerate(order[1:], start=1):
        label_targets[s] = [split_targets(int(n), fractions[split]) for n in per_label]
        size_targets[s] = round(sizes.sum() * fractions[split])
    label_targets[0] = np.maximum(per_label - label_targets[1:].sum(0), 0)
    size_targets[0] = sizes.sum() - size_targets[1:].sum()
    split_of = iterative_stratification(y, sizes, label_targets, size_targets, seed)
    return {key: order[split_of[row[key]]] for key in keys}
