"""The tf.data pipeline: pixels and labels in class order, unreadable files skipped and recorded,
a seeded shuffle, augmentation on training batches only."""

from __future__ import annotations

import numpy as np
import pytest
from factory import make_colour_dataset

from tlstudio.core.data.health import inspect_folder
from tlstudio.core.data.pipeline import LoadErrors, make_dataset
from tlstudio.core.data.split import ManifestEntry, SplitConfig, make_split
from tlstudio.core.settings import Augmentation


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = make_colour_dataset(tmp_path_factory.mktemp("pipe") / "data", per_class=5, size=24)
    return root, make_split(inspect_folder(root).images, SplitConfig(0.0, 0.0, 0))


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_pixels_are_float_0_255_at_the_size_with_labels_in_class_order(manifest):
    root, m = manifest
    out = batches(make_dataset(m.entries, root, m.classes, 16, 4))
    x = np.concatenate([b[0] for b in out])
    y = np.concatenate([b[1] for b in out])
    assert x.shape == (15, 16, 16, 3) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 255
    assert [m.classes[i] for i in y] == [e.label for e in m.entries]  # no shuffle when not training
    reds = x[[i for i, e in enumerate(m.entries) if e.label == "red"]]
    assert reds[..., 0].mean() > reds[..., 2].mean() + 50  # the red class is red


def test_a_broken_file_is_skipped_and_recorded(manifest, tmp_path):
    root, m = manifest
    broken = root / "red" / "broken.png"
    broken.write_bytes(b"not an image")
    entries = [*m.entries, ManifestEntry("red/broken.png", "0" * 64, "red", "train")]
    errors = LoadErrors()
    try:
        out = batches(make_dataset(entries, root, m.classes, 16, 8, cache="none", errors=errors))
    finally:
        broken.unlink()
    assert sum(len(b[1]) for b in out) == 15
    assert [path.endswith("broken.png") for path, _ in errors.items()] == [True]


def test_training_shuffles_by_seed_and_augments_training_batches_only(manifest):
    root, m = manifest
    flip = Augmentation(flip=True, rotation=0.0)

    def labels(seed, training=True):
        ds = make_dataset(m.entries, root, m.classes, 16, 15, training=training, seed=seed, augmentation=flip)
        return batches(ds)[0]

    first, again, other = labels(1), labels(1), labels(2)
    assert np.array_equal(first[1], again[1]) and not np.array_equal(first[1], other[1])
    plain = batches(make_dataset(m.entries, root, m.classes, 16, 15))[0][0]
    evaluation = labels(1, training=False)[0]
    assert np.array_equal(plain, evaluation)  # no augmentation outside training
    assert sorted(first[1].tolist()) == sorted(again[1].tolist()) == sorted(plain_labels(m))


def plain_labels(m):
    return [m.classes.index(e.label) for e in m.entries]


def test_autograph_converts_the_decoding_without_a_warning(tmp_path):
    """AutoGraph could not read two lambdas on one line and printed a warning (with its source) on every
    run; a fresh process, because AutoGraph warns once per function and process."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        from PIL import Image
        from tlstudio.core.data.pipeline import LoadErrors, decode_images
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save({str(tmp_path / "a.png")!r})
        ds = tf.data.Dataset.from_tensor_slices(([{str(tmp_path / "a.png")!r}], [0]))
        print("decoded", [tuple(x.shape) for x, _ in decode_images(ds, 8, LoadErrors())])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "decoded [(8, 8, 3)]" in out.stdout, out.stdout + out.stderr
    assert "AutoGraph could not" not in out.stdout + out.stderr
