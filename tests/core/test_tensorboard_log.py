"""A run's TensorBoard files are in Keras' layout (the same folders and tags ``keras.callbacks.TensorBoard``
writes) and carry an HParams session when the tensorboard package is installed: read back from the
event files."""

from __future__ import annotations

import doctest
import sys

import pytest

from tlstudio.core.training import tensorboard_log
from tlstudio.core.training.tensorboard_log import ScalarLog, split_figures

EPOCHS = [
    {"loss": 0.9, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.4, "learning_rate": 1e-3},
    {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.7, "learning_rate": 5e-4},
]


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), …]}`` of every event file in ``folder`` (not its sub-folders)."""
    import tensorflow as tf

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    number = float(tf.make_ndarray(value.tensor))
                    found.setdefault(value.tag, []).append((event.step, number))
    return found


def test_epochs_land_in_train_and_validation_as_keras_names_them(tmp_path):
    log = ScalarLog()
    for epoch, values in enumerate(EPOCHS):
        log.write(tmp_path, epoch, values)
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train", "validation"]
    train, validation = scalars(tmp_path / "train"), scalars(tmp_path / "validation")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    assert set(validation) == {"epoch_loss", "epoch_accuracy"}
    assert validation["epoch_loss"] == [(0, pytest.approx(1.0)), (1, pytest.approx(0.7))]
    assert train["epoch_learning_rate"][1] == (1, pytest.approx(5e-4))


def test_the_layout_is_the_one_keras_tensorboard_callback_writes(tmp_path):
    pytest.importorskip("tensorboard")  # Keras' callback writes through it
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 2
    keras_dir = tmp_path / "keras"
    model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=2,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(keras_dir), write_graph=False, profile_batch=0)],
    )
    ours = tmp_path / "ours"
    log = ScalarLog()
    for epoch, values in enumerate(EPOCHS):
        log.write(ours, epoch, values)
    log.close()
    assert sorted(p.name for p in keras_dir.iterdir()) == sorted(p.name for p in ours.iterdir())
    for part in ("train", "validation"):
        # (Keras also writes steps per second, and validation's figures again against the optimizer's
        # step, ``evaluation_<name>_vs_iterations``: the per-epoch curves are the ones compared)
        theirs = {
            t for t in scalars(keras_dir / part) if t.startswith("epoch_") and t != "epoch_steps_per_second"
        }
        assert theirs == set(scalars(ours / part)), part


def test_the_run_is_an_hparams_session_with_its_settings_and_final_figures(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from tlstudio.core.settings import TrainSettings

    folder = tmp_path / "run-7" / "tensorboard"
    settings = TrainSettings(backbone="EfficientNetB0", epochs=3).to_dict()
    log = ScalarLog()
    log.write(folder, 0, EPOCHS[0])
    metrics = {"test_accuracy": 0.75, "val_loss": 0.7, "best_epoch": 0, "auc": float("nan")}
    assert log.write_outcome(folder, settings, metrics, step=0)
    log.close()
    events = EventAccumulator(str(folder))
    events.Reload()
    (content,) = events.PluginTagToContent("hparams").values()
    session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {
        k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in session.hparams.items()
    }
    assert hparams["backbone"] == "EfficientNetB0" and hparams["epochs"] == 3
    assert hparams["head.dropout"] == pytest.approx(0.2) and hparams["image_size"] == "null"
    assert session.group_name == "run-7"  # the trial is named after the run folder
    finals = scalars(folder)
    assert set(finals) == {"test_accuracy", "val_loss", "best_epoch"}  # NaN left out
    assert finals["test_accuracy"] == [(0, pytest.approx(0.75))]


def test_without_tensorboard_the_curves_are_written_and_the_hparams_are_not(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard.plugins.hparams", None)  # import fails, as uninstalled
    log = ScalarLog()
    log.write(tmp_path, 0, EPOCHS[0])
    assert not log.write_outcome(tmp_path, {"epochs": 3}, {"test_accuracy": 0.5}, step=0)
    log.close()
    assert not list(tmp_path.glob("events.out.tfevents.*"))
    assert set(scalars(tmp_path / "train")) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}


def test_split_figures_and_flat_hparams_examples():
    assert split_figures({"val_f1": 0.5}) == {"train": {}, "validation": {"epoch_f1": 0.5}}
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(tensorboard_log):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 1
