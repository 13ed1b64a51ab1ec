"""Panels own their settings: a project shown in the window and read back is the same project."""

from __future__ import annotations

from dataclasses import fields

import pytest

from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.project import Project
from tlstudio.core.settings import Augmentation, HeadSettings, TrainSettings, defaults
from tlstudio.gui import worker

pytestmark = pytest.mark.slow
LONG = 120_000


def unusual_settings(backbone: str) -> TrainSettings:
    """A value unlike the default in every field a panel shows, and in those no panel shows."""
    s = TrainSettings(
        backbone=backbone,
        weights="none",
        image_size=None,  # a model file brings its own size
        cut_at="features",
        preprocessing="unit",
        head=HeadSettings(pooling="max", dropout=0.35, dense_units=(24, 12)),
        freeze=FreezePlan("top", 2, train_batchnorm=True, lr_decay=0.7),
        optimizer="sgd",
        learning_rate=0.003,
        batch_size=12,
        auto_batch_size=False,
        epochs=7,
        fine_tune_epochs=9,
        fine_tune_blocks=3,
        fine_tune_lr_factor=0.05,
        fine_tune_lr_decay=0.8,
        early_stopping_patience=4,
        augmentation=Augmentation(flip=False, rotation=0.1, zoom=0.15, contrast=0.2),
        class_weights="balanced",
        seed=7,
        val_fraction=0.2,
        test_fraction=0.25,
        cache="memory",
        mixed_precision="off",
        device="gpu:3",  # a GPU this machine lacks: kept, shown as such, and the run refuses it
        feature_cache=False,
        strategy="multiworker",
        calibrate=True,
        interpolate=False,
        small_folder_val="keep",
        soup_checkpoints=5,
        peft="lora",
        probe_features="last",
    )
    base = defaults()
    same = [
        f.name
        for f in fields(TrainSettings)
        if f.name not in ("backbone", "image_size") and getattr(s, f.name) == getattr(base, f.name)
    ]
    assert not same, f"make these differ from the defaults too: {same}"
    return s


def test_project_to_window_to_project_is_identical(window, qtbot, tmp_path, tiny_backbone_file):
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)
    original = unusual_settings(str(tiny_backbone_file))
    window.set_project(Project(path=tmp_path / "p.tlstudio.json", settings=original))
    assert window.current_settings() == original  # before the layer tree is built
    qtbot.waitUntil(lambda: window.layers.model.tree is not None, timeout=LONG)
    back = window.current_settings()
    for f in fields(TrainSettings):
        assert getattr(back, f.name) == getattr(original, f.name), f.name
    assert back.freeze == FreezePlan("top", 2, train_batchnorm=True, lr_decay=0.7)  # not a layer list
    window.save_project()
    assert Project.load(tmp_path / "p.tlstudio.json").settings == original


def test_the_default_project_round_trips_too(window, qtbot, tmp_path, tiny_backbone_file):
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)
    original = defaults().but(backbone=str(tiny_backbone_file), image_size=None)
    window.set_project(Project(path=tmp_path / "d.tlstudio.json", settings=original))
    qtbot.waitUntil(lambda: window.layers.model.tree is not None, timeout=LONG)
    assert window.current_settings() == original


def test_a_task_left_running_is_found(qtbot):
    """What the suite's no-thread-left fixture relies on: a running QThread task is listed."""
    import threading

    release = threading.Event()
    task = worker.Task(lambda: release.wait(10))
    task.start()
    qtbot.waitUntil(task.is_running, timeout=5000)
    assert task in worker.running_tasks()
    release.set()
    assert task.wait(5000)
    assert task not in worker.running_tasks()
