"""Training sessions end to end: events, run folder, two phases, stop, early stopping, failures."""

from __future__ import annotations

import importlib.util
import json
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from factory import encode, pattern, png_bomb, write

from tlstudio.core import events as ev
from tlstudio.core.data.split import Manifest
from tlstudio.core.settings import Augmentation, HeadSettings, TrainSettings
from tlstudio.core.training.session import TrainingSession

pytestmark = pytest.mark.slow


def settings_for(backbone, **changes) -> TrainSettings:
    base = TrainSettings(
        backbone=str(backbone),
        epochs=3,
        fine_tune_epochs=2,
        batch_size=8,
        learning_rate=1e-2,
        augmentation=Augmentation(flip=False, rotation=0.0),
    )
    return base.but(**changes)


class Recorder:
    def __init__(self, on=None):
        self.events: list[ev.Event] = []
        self.on = on

    def __call__(self, event):
        self.events.append(event)
        if self.on:
            self.on(event, self)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def test_two_phase_run_reports_everything_and_writes_the_run_folder(
    colour_data, tiny_backbone_file, tmp_path
):
    rec = Recorder()
    result = TrainingSession(
        settings_for(tiny_backbone_file), colour_data, tmp_path / "run", on_event=rec
    ).run()
    assert result.status == "completed", result.error
    started = rec.of(ev.RunStarted)[0]
    assert started.device == "CPU · float32 (auto: a CPU gains nothing from float16)"
    assert started.classes == ["blue", "green", "red"]
    phases = rec.of(ev.PhaseStarted)
    assert [p.phase for p in phases] == ["probe", "fine-tune"]
    assert phases[1].learning_rate == pytest.approx(1e-3)  # 10x lower
    wise = rec.of(ev.Interpolated)[0]
    assert wise.alphas[0] == 0.0 and wise.alphas[-1] == 1.0 and wise.chosen in wise.alphas
    assert phases[1].trainable_params > phases[0].trainable_params
    batches = rec.of(ev.BatchEnded)
    assert batches and all(b.images_per_second > 0 for b in batches)
    epochs = rec.of(ev.EpochEnded)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epochs[0].metrics)
    assert [e.epoch for e in epochs] == list(range(len(epochs)))
    assert rec.of(ev.CheckpointSaved)
    finished = rec.events[-1]
    assert isinstance(finished, ev.RunFinished) and finished.status == "completed"
    assert "test_accuracy" in finished.metrics

    run = tmp_path / "run"
    for name in (
        "settings.json",
        "manifest.csv",
        "history.json",
        "run.json",
        "metrics.json",
        "checkpoints/best.weights.h5",
        "saved_model/saved_model.pb",
        "model.keras",
        "labels.txt",
        "metadata.json",
        "evaluation.json",
        "report.html",
    ):
        assert (run / name).exists(), name
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(finished.metrics["test_accuracy"])
    assert sum(evaluation["per_class"][c]["support"] for c in evaluation["labels"]) == len(
        Manifest.load(run / "manifest.csv").subset("test")
    )
    report = (run / "report.html").read_text()
    assert "Confusion matrix" in report and "Learning curves" in report and "data:image/png" in report
    assert "95% interval (Wilson)" in report
    history = json.loads((run / "history.json").read_text())
    assert {e["phase"] for e in history["epochs"]} == {"probe", "fine-tune"}
    assert history["epochs"][0]["probe_converged"] and history["interpolation"]
    assert finished.metrics["wise_alpha"] == wise.chosen
    tags: dict[str, set[str]] = {}  # TensorBoard event files in Keras' layout, a scalar per figure and epoch
    for part in ("train", "validation"):
        events = list((run / "tensorboard" / part).glob("events.out.tfevents.*"))
        assert events, part
        for record in tf.data.TFRecordDataset([str(e) for e in events]):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.setdefault(part, set()).update(v.tag for v in event.summary.value)
    assert {"epoch_loss", "epoch_learning_rate"} <= tags["train"]
    assert {"epoch_loss", "epoch_accuracy"} <= tags["validation"]
    if (
        importlib.util.find_spec("tensorboard") is not None
    ):  # the run as an HParams session, its final figures
        root = [str(e) for e in (run / "tensorboard").glob("events.out.tfevents.*")]
        plugins = {
            v.tag: v.metadata.plugin_data.plugin_name
            for record in tf.data.TFRecordDataset(root)
            for v in tf.compat.v1.Event.FromString(record.numpy()).summary.value
        }
        assert "hparams" in plugins.values() and plugins["test_accuracy"] == "scalars"
    assert len(history["batches"]) == len(batches)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["manifest_fingerprint"] == Manifest.load(run / "manifest.csv").fingerprint()
    assert TrainSettings.from_dict(json.loads((run / "settings.json").read_text())) == settings_for(
        tiny_backbone_file
    )


def test_transfer_learns_the_colour_task(colour_data, tiny_backbone_file, tmp_path):
    s = settings_for(tiny_backbone_file, epochs=15, fine_tune_epochs=5, early_stopping_patience=5)
    result = TrainingSession(s, colour_data, tmp_path / "run").run()
    assert result.status == "completed"
    assert result.metrics["val_accuracy"] >= 0.8, result.metrics


def test_stop_ends_training_within_one_batch_and_keeps_the_best_weights(
    colour_data, tiny_backbone_file, tmp_path
):
    stop = threading.Event()

    def stop_in_second_epoch(event, rec):
        if isinstance(event, ev.BatchEnded) and event.epoch == 1 and event.step == 2:
            stop.set()
            rec.stop_at = len(rec.of(ev.BatchEnded))

    rec = Recorder(stop_in_second_epoch)
    result = TrainingSession(
        settings_for(tiny_backbone_file, epochs=20),
        colour_data,
        tmp_path / "run",
        on_event=rec,
        stop=stop,
    ).run()
    assert result.status == "stopped"
    assert len(rec.of(ev.BatchEnded)) == rec.stop_at  # not one batch more
    assert len(rec.of(ev.EpochEnded)) == 1
    finishing = rec.of(ev.Finishing)  # each slow step is announced before it starts, not after
    assert finishing[0].step.startswith("stopped: restoring the best weights")
    first_of_each: dict[str, int] = {}
    for f in finishing:
        if f.total:
            first_of_each.setdefault(f.step, f.done)
    assert first_of_each and set(first_of_each.values()) == {0}, first_of_each
    assert result.export_dir is not None and (result.export_dir / "saved_model").is_dir()
    best = rec.of(ev.CheckpointSaved)[-1]
    reference = keras.models.load_model(tmp_path / "run" / "model.keras")
    restored = result.model
    restored_check = keras.models.clone_model(restored)
    restored_check.load_weights(best.path)
    for a, b in zip(reference.get_weights(), restored_check.get_weights(), strict=True):
        np.testing.assert_allclose(a, b)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "stopped"


def test_stop_before_the_first_epoch_keeps_nothing_and_says_so(colour_data, tiny_backbone_file, tmp_path):
    stop = threading.Event()
    stop.set()
    result = TrainingSession(settings_for(tiny_backbone_file), colour_data, tmp_path / "run", stop=stop).run()
    assert result.status == "stopped" and "first epoch" in result.error
    assert not (tmp_path / "run" / "saved_model").exists()


def test_early_stopping_restores_the_best_epoch(colour_data, tiny_backbone_file, tmp_path):
    s = settings_for(
        tiny_backbone_file,
        epochs=30,
        fine_tune_epochs=0,
        learning_rate=3.0,
        early_stopping_patience=1,
        optimizer="sgd",
        feature_cache=False,  # the head trained with the optimizer, epoch by epoch
    )
    rec = Recorder()
    result = TrainingSession(s, colour_data, tmp_path / "run", on_event=rec).run()
    assert result.status == "completed"
    epochs = rec.of(ev.EpochEnded)
    assert len(epochs) < 30
    best = min(epochs, key=lambda e: e.metrics["val_loss"])
    assert result.metrics["best_epoch"] == best.epoch
    assert result.metrics["val_loss"] == pytest.approx(best.metrics["val_loss"])


def test_a_failure_keeps_the_last_good_checkpoint(colour_data, tiny_backbone_file, tmp_path):
    def explode(event, rec):
        if isinstance(event, ev.EpochEnded) and event.epoch == 1:
            raise RuntimeError("disk on fire")

    rec = Recorder(explode)
    result = TrainingSession(
        settings_for(tiny_backbone_file), colour_data, tmp_path / "run", on_event=rec
    ).run()
    assert result.status == "failed" and "disk on fire" in result.error
    failed = rec.of(ev.RunFailed)[0]
    assert failed.checkpoint and failed.hint
    with tf.io.gfile.GFile(failed.checkpoint, "rb") as fh:
        assert fh.read(8) == b"\x89HDF\r\n\x1a\n"  # a whole HDF5 file
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and info["checkpoint"] == failed.checkpoint
    assert (tmp_path / "run" / "error.txt").read_text().count("disk on fire")
    assert not (tmp_path / "run" / "saved_model").exists()


def test_hostile_folder_trains_to_the_end_and_reports_bad_files(colour_data, tiny_backbone_file, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    write(data / "red" / "page.jpg", b"<html>nope</html>")
    write(data / "red" / "empty.png", b"")
    write(data / "green" / "bomb.png", png_bomb())
    jpeg = encode(pattern(64, 64), "JPEG")
    write(data / "blue" / "cut.jpg", jpeg[: len(jpeg) // 2])
    write(data / "blue" / ".DS_Store", b"junk")
    (data / "empty_class").mkdir()
    rec = Recorder()
    result = TrainingSession(
        settings_for(tiny_backbone_file, fine_tune_epochs=1), data, tmp_path / "run", on_event=rec
    ).run()
    assert result.status == "completed", result.error
    skipped = dict(rec.of(ev.FilesSkipped)[0].files)
    assert {"red/page.jpg", "red/empty.png", "green/bomb.png", "blue/cut.jpg", "blue/.DS_Store"} <= set(
        skipped
    )
    assert (tmp_path / "run" / "saved_model" / "saved_model.pb").is_file()


def test_a_file_that_breaks_after_the_scan_is_dropped_not_fatal(colour_data, tiny_backbone_file, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import make_split

    manifest = make_split(inspect_folder(data).images)
    victim = next(e for e in manifest.entries if e.split == "train")
    (data / victim.path).write_bytes(b"\x89PNG\r\n\x1a\n garbage now")
    rec = Recorder()
    result = TrainingSession(
        settings_for(tiny_backbone_file, fine_tune_epochs=0),
        data,
        tmp_path / "run",
        manifest=manifest,
        on_event=rec,
    ).run()
    assert result.status == "completed", result.error
    assert any(victim.path.split("/")[-1] in path for path, _ in rec.of(ev.FilesSkipped)[0].files)


def test_mixed_precision_runs_and_exports(colour_data, tmp_path):
    s = settings_for(  # from scratch: long enough to learn, or the run would end failed_to_learn
        "MobileNetV3Small",
        weights="none",
        image_size=32,
        epochs=40,
        fine_tune_epochs=0,
        learning_rate=3e-3,
        val_fraction=0.3,
        mixed_precision="on",
    )
    rec = Recorder()
    result = TrainingSession(s, colour_data, tmp_path / "run", on_event=rec).run()
    assert result.status == "completed", result.error
    assert "mixed float16 (your choice; slow on a CPU)" in rec.of(ev.RunStarted)[0].device
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    # trained in float16; evaluated and exported in float32 (the same weights)
    assert any("float32 model" in e.step for e in rec.of(ev.Finishing))
    exported = keras.models.load_model(tmp_path / "run" / "model.keras")
    layers = [x for x in exported.get_layer("backbone").layers if type(x).__name__ == "Conv2D"]
    assert layers and all(x.compute_dtype == "float32" for x in layers)
    assert result.model.dtype_policy.name == "float32"
    saved = tf.saved_model.load(str(tmp_path / "run" / "saved_model"))
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    served = saved.signatures["serving_default"](images=tf.constant(pixels))
    assert all(v.dtype == tf.float32 for v in served.values())
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    graph = saved_model_pb2.SavedModel()
    graph.ParseFromString((tmp_path / "run" / "saved_model" / "saved_model.pb").read_bytes())
    computed = [
        n.attr["T"].type
        for f in graph.meta_graphs[0].graph_def.library.function
        for n in f.node_def
        if n.op in ("Conv2D", "MatMul", "DepthwiseConv2dNative")
    ]  # (a mixed-precision model's export computes these in DT_HALF; inputs may still be float16)
    assert computed and types_pb2.DT_HALF not in computed


def test_legacy_h5_model_file_as_backbone(colour_data, tiny_backbone_file, tmp_path):
    h5 = tmp_path / "old.h5"
    keras.models.load_model(tiny_backbone_file).save(h5)
    result = TrainingSession(
        settings_for(h5, epochs=1, fine_tune_epochs=0), colour_data, tmp_path / "run"
    ).run()
    assert result.status == "completed", result.error


def test_temperature_scaling_is_fitted_on_val_and_carried_into_the_export(
    colour_data, tiny_backbone_file, tmp_path
):
    from tlstudio.core.data.pipeline import load_for_model
    from tlstudio.core.results.evaluation import load_exported
    from tlstudio.core.results.metrics import apply_temperature

    s = settings_for(tiny_backbone_file, fine_tune_epochs=0, calibrate=True)
    session = TrainingSession(s, colour_data, tmp_path / "run")
    result = session.run()
    assert result.status == "completed", result.error
    t = result.metrics["temperature"]
    assert t > 0 and t != 1.0
    m = result.metrics  # what the fit minimises (ECE on a handful of images may go either way)
    assert m["val_log_loss_calibrated"] < m["val_log_loss_before_calibration"]
    # the export = the uncalibrated best checkpoint with softmax(log p / T)
    session.model.load_weights(tmp_path / "run" / "checkpoints" / "best.weights.h5")
    images = np.stack([load_for_model(p, 32) for p in sorted(colour_data.glob("*/*.png"))[:6]])
    raw = session.model.predict_on_batch(images.astype("float32"))
    exported = load_exported(tmp_path / "run").predict(images)
    np.testing.assert_allclose(exported, apply_temperature(raw, t), atol=1e-4)
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["metrics"]["temperature"] == pytest.approx(t)


def test_frozen_backbone_trains_on_cached_features_with_the_same_result(
    colour_data, tiny_backbone_file, tmp_path
):
    s = settings_for(tiny_backbone_file, epochs=8, fine_tune_epochs=1, early_stopping_patience=8)
    runs = {}
    for cache in (True, False):
        rec = Recorder()
        result = TrainingSession(
            s.but(feature_cache=cache), colour_data, tmp_path / str(cache), on_event=rec
        ).run()
        assert result.status == "completed", result.error
        runs[cache] = (result, [p.uses_feature_cache for p in rec.of(ev.PhaseStarted)])
    assert runs[True][1] == [True, False]  # the head phase on cached features, fine-tuning on pixels
    assert runs[False][1] == [False, False]
    cached = list((tmp_path / "True" / "features").glob("*/train.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as saved:
        assert saved["features"].shape == (
            len(Manifest.load(tmp_path / "True" / "manifest.csv").subset("train")),
            16,
        )
    a, b = runs[True][0].metrics, runs[False][0].metrics
    assert a["test_accuracy"] >= 0.8 and b["test_accuracy"] >= 0.8
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.2
    # augmentation on: the full pipeline, automatically
    rec = Recorder()
    aug = s.but(  # a head with hidden layers trains with the optimizer; augmentation: the full pipeline
        epochs=1,
        fine_tune_epochs=0,
        augmentation=Augmentation(flip=True),
        head=HeadSettings(dense_units=(8,)),
    )
    assert TrainingSession(aug, colour_data, tmp_path / "aug", on_event=rec).run().status != "failed"
    assert [p.uses_feature_cache for p in rec.of(ev.PhaseStarted)] == [False]


def test_the_probe_alone_reaches_what_the_features_allow(colour_data, tiny_backbone_file, tmp_path):
    rec = Recorder()
    s = settings_for(tiny_backbone_file, fine_tune_epochs=0)
    result = TrainingSession(s, colour_data, tmp_path / "run", on_event=rec).run()
    assert result.status == "completed", result.error
    assert [p.phase for p in rec.of(ev.PhaseStarted)] == ["probe"]
    assert result.metrics["val_accuracy"] >= 0.8 and result.metrics["probe_converged"]
    assert not rec.of(ev.Interpolated)  # nothing to interpolate without fine-tuning
    working = rec.of(ev.Working)  # the probe's slow steps report their progress as they go
    by_step: dict[str, list[tuple[int, int]]] = {}
    for w in working:
        by_step.setdefault(w.step, []).append((w.done, w.total))
    assert set(by_step) == {
        "computing the backbone's features of the train split",
        "computing the backbone's features of the val split",
        "fitting the linear probe",
    }
    for step, counts in by_step.items():
        assert counts[-1][0] == counts[-1][1] > 0, step  # each ends complete
        assert [done for done, _ in counts] == sorted(done for done, _ in counts), step


def test_a_run_that_cannot_learn_ends_failed_to_learn_and_exports_nothing(tiny_backbone_file, tmp_path):
    from factory import make_class_folder

    data = tmp_path / "noise"
    for i, label in enumerate(("a", "b", "c")):
        make_class_folder(data, label, 14, seed=i, size=(32, 32))  # random patterns: no class signal
    rec = Recorder()
    s = settings_for(tiny_backbone_file, fine_tune_epochs=1, val_fraction=0.3, test_fraction=0.15)
    result = TrainingSession(s, data, tmp_path / "run", on_event=rec).run()
    assert result.status == "failed_to_learn", result.metrics
    finished = rec.of(ev.RunFinished)[0]
    assert "did not learn" in finished.message and "Try" in finished.message
    assert not (tmp_path / "run" / "saved_model").exists()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed_to_learn" and "did not learn" in info["message"]


def test_from_scratch_every_layer_trains_with_batchnorm_following_the_run(colour_data, tmp_path):
    s = settings_for(
        "MobileNetV3Small",
        weights="none",
        image_size=32,
        epochs=12,
        fine_tune_epochs=0,
        learning_rate=3e-3,
        val_fraction=0.3,
    )
    rec = Recorder()
    session = TrainingSession(s, colour_data, tmp_path / "run", on_event=rec)
    result = session.run()
    assert [p.phase for p in rec.of(ev.PhaseStarted)] == ["train"]
    bns = [x for x in session.model.get_layer("backbone").layers if type(x).__name__ == "BatchNormalization"]
    assert bns and all(b.trainable for b in bns) and all(b.momentum <= 0.91 for b in bns)
    assert result.status == "completed", result.metrics  # learns: not within noise of chance
    assert result.metrics["val_accuracy"] > 0.6


def test_the_same_seed_gives_the_same_run(colour_data, tiny_backbone_file, tmp_path):
    s = settings_for(
        tiny_backbone_file, fine_tune_epochs=2, augmentation=Augmentation(flip=True, rotation=0.05)
    )
    runs = [TrainingSession(s, colour_data, tmp_path / f"run{i}").run() for i in range(2)]
    a, b = (r.metrics for r in runs)
    assert a == b
    for x, y in zip(runs[0].model.get_weights(), runs[1].model.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_class_too_small_for_the_test_split_is_named_in_the_run(tiny_backbone_file, tmp_path):
    from factory import make_class_folder

    data = tmp_path / "data"
    for i, (label, n) in enumerate((("a", 12), ("b", 12), ("c", 2))):
        make_class_folder(data, label, n, seed=i, size=(32, 32))
    rec = Recorder()
    s = settings_for(tiny_backbone_file, fine_tune_epochs=0)
    TrainingSession(s, data, tmp_path / "run", on_event=rec).run()
    notes = [e.reason for e in rec.of(ev.RecipeChanged)]
    assert any(n.startswith("no image of c in the test split:") for n in notes), notes
