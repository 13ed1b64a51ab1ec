"""Test set-up shared by every test: headless Qt, quiet and small TensorFlow."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from factory import make_colour_dataset

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests run on the CPU, the same everywhere


@pytest.fixture(autouse=True)
def no_thread_left_running():
    """Fail a test that leaves a thread of its own running: a Python thread, or a GUI task's QThread
    (which ``threading`` cannot see)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for thread in leftover:
        thread.join(timeout=5)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads left running: {still}"
    worker = sys.modules.get("tlstudio.gui.worker")  # only once a GUI test has loaded Qt
    if worker is not None:
        tasks = worker.running_tasks()
        for task in tasks:
            task.wait(5000)
        assert not [t for t in tasks if t.is_running()], "a GUI task's QThread was left running"


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory):
    """Three colour classes, 12 images each, 32×32."""
    return make_colour_dataset(tmp_path_factory.mktemp("colour") / "data")


@pytest.fixture(scope="session")
def tiny_backbone_file(tmp_path_factory):
    """A small CNN classifier, trained a little on other colour data, saved as .keras."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(x)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.MaxPooling2D(name="pool_a")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.MaxPooling2D(name="pool_b")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_c")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="old_top")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    colours = np.array([[220, 30, 30], [30, 220, 30], [30, 30, 220], [200, 200, 30]], np.float32)
    y = rng.integers(0, 4, 256)
    images = np.clip(rng.normal(colours[y][:, None, None, :], 40, (256, 32, 32, 3)), 0, 255)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images, y, epochs=3, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("backbone") / "pretrained.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def probe_run(tmp_path_factory, colour_data, tiny_backbone_file):
    """One run on ``colour_data`` (the probe only: quick), shared by the tests that read a run."""
    from tlstudio.core.settings import Augmentation, TrainSettings
    from tlstudio.core.training.session import TrainingSession

    out = tmp_path_factory.mktemp("probe-run") / "run"
    s = TrainSettings(
        backbone=str(tiny_backbone_file),
        fine_tune_epochs=0,
        batch_size=8,
        augmentation=Augmentation(False, 0.0),
    )
    result = TrainingSession(s, colour_data, out).run()
    assert result.status == "completed", result.error
    return out


@pytest.fixture(scope="session")
def multilabel_probe_run(tmp_path_factory, tiny_backbone_file):
    """One multi-label run (the probe only: quick) on a labels CSV of colours in quadrants
    (``factory.make_multilabel_csv``); returns (run folder, the CSV)."""
    from factory import make_multilabel_csv

    from tlstudio.core.settings import Augmentation, TrainSettings
    from tlstudio.core.training.session import TrainingSession

    csv = make_multilabel_csv(tmp_path_factory.mktemp("ml-data") / "data", n=48)
    out = tmp_path_factory.mktemp("ml-probe-run") / "run"
    s = TrainSettings(
        backbone=str(tiny_backbone_file),
        fine_tune_epochs=0,
        batch_size=8,
        augmentation=Augmentation(False, 0.0),
    )
    result = TrainingSession(s, csv, out).run()
    assert result.status == "completed", result.error
    return out, csv
