"""The Evaluate panel: confusion-matrix cell → gallery, move to class with undo, Grad-CAM, runs."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from tlstudio.core.backbone.classifier import build_classifier
from tlstudio.core.data.health import inspect_folder
from tlstudio.core.data.split import Manifest, SplitConfig, make_split
from tlstudio.core.results.evaluation import summarize_predictions
from tlstudio.core.results.run_history import load_run
from tlstudio.gui.evaluate_panel import EvaluatePanel

pytestmark = pytest.mark.slow


@pytest.fixture
def run(tmp_path, colour_data):
    """A data copy, its manifest, and a run folder whose evaluation has known confusions."""
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    report = inspect_folder(data)
    manifest = make_split(report.images, SplitConfig(0.0, 0.5, 1))
    manifest_path = tmp_path / "p.tlstudio.manifest.csv"
    manifest.save(manifest_path)
    test = manifest.subset("test")
    labels = manifest.classes
    y = np.array([labels.index(e.label) for e in test])
    pred = y.copy()
    pred[::3] = (y[::3] + 1) % 3  # every third image confused with the next class
    probs = np.full((len(y), 3), 0.1)
    probs[np.arange(len(y)), pred] = 0.8
    evaluation = summarize_predictions(labels, y, probs, [e.path for e in test])
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation.to_dict(with_predictions=True)))
    (run_dir / "run.json").write_text(json.dumps({"status": "completed", "manifest_fingerprint": "abc"}))
    (run_dir / "settings.json").write_text(json.dumps({"backbone": "x.keras", "weights": "imagenet"}))
    (run_dir / "labels.txt").write_text("\n".join(labels) + "\n")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    build_classifier(keras.Model(inputs, x, name="backbone"), 3, 32).save(run_dir / "model.keras")
    return data, manifest_path, run_dir, evaluation


def test_clicking_a_cell_shows_exactly_its_images(qtbot, run):
    data, manifest_path, run_dir, evaluation = run
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir)], str(data), manifest_path)
    assert panel.confusion.rowCount() == 3 and "Test accuracy" in panel.summary.toPlainText()
    labels = evaluation.labels
    for i, j in ((0, 1), (1, 1), (2, 0)):
        panel.matrix.clicked.emit(panel.confusion.index(i, j))
        shown = sorted(item["path"] for item in panel.errors.gallery_model.items)
        assert shown == sorted(p["path"] for p in evaluation.cell(labels[i], labels[j]))
        assert len(shown) == evaluation.confusion_matrix[i][j]
    panel.errors.show_errors()  # most confidently wrong: only errors
    assert len(panel.errors.gallery_model.items) == len(evaluation.errors())
    assert panel.errors.gallery_model.data(panel.errors.gallery_model.index(0)) is not None


def test_move_to_class_updates_folder_and_manifest_and_undoes(qtbot, run):
    data, manifest_path, run_dir, _ = run
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir)], str(data), manifest_path)
    panel.matrix.clicked.emit(panel.confusion.index(0, 1))  # true blue, predicted green
    panel.errors.gallery.setCurrentIndex(panel.errors.gallery_model.index(0))
    item = panel.errors.gallery_model.items[0]
    old = item["path"]
    before = {e.path: e for e in Manifest.load(manifest_path).entries}[old]
    panel.errors.move_current("green")
    new = item["path"]
    assert new.startswith("green/") and (data / new).is_file() and not (data / old).exists()
    entry = {e.path: e for e in Manifest.load(manifest_path).entries}[new]
    assert entry.label == "green" and entry.split == before.split and entry.sha256 == before.sha256
    assert old not in {e.path for e in Manifest.load(manifest_path).entries}
    assert panel.errors.undo_button.isEnabled()
    panel.errors.undo_button.click()
    assert (data / old).is_file() and not (data / new).exists()
    assert {e.path: e for e in Manifest.load(manifest_path).entries}[old] == before
    assert not panel.errors.undo_button.isEnabled()


def test_grad_cam_of_the_selected_image(qtbot, run):
    data, manifest_path, run_dir, _ = run
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir)], str(data), manifest_path)
    panel.errors.gallery.setCurrentIndex(panel.errors.gallery_model.index(0))
    panel.errors.cam_button.click()
    qtbot.waitUntil(lambda: not panel.errors.task.is_running(), timeout=60_000)
    qtbot.waitUntil(
        lambda: panel.errors.preview.pixmap() is not None and not panel.errors.preview.pixmap().isNull(),
        timeout=5000,
    )
    assert panel.errors.preview.pixmap().width() == 256
    assert panel.errors.cam_button.text() == "Grad-CAM"


def test_grad_cam_can_be_cancelled_and_asked_again(qtbot, run):
    data, manifest_path, run_dir, _ = run
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir)], str(data), manifest_path)
    errors = panel.errors
    errors.gallery.setCurrentIndex(errors.gallery_model.index(0))
    errors.cam_button.click()
    first = errors.task
    assert errors.cam_button.text() == "Cancel Grad-CAM"
    errors.cam_button.click()  # cancel: its result is dropped, the button is free at once
    assert errors.cam_button.text() == "Grad-CAM" and errors.preview.text() == "Grad-CAM cancelled."
    errors.cam_button.click()  # asked again
    assert errors.task is not first
    qtbot.waitUntil(
        lambda: errors.preview.pixmap() is not None and not errors.preview.pixmap().isNull(), timeout=60_000
    )
    first.wait()
    assert errors.cam_button.text() == "Grad-CAM"


def test_two_runs_compared_side_by_side_and_cloned(qtbot, run, tmp_path):
    data, manifest_path, run_dir, _ = run
    other = run_dir.parent / "run-2"
    shutil.copytree(run_dir, other)
    (other / "settings.json").write_text(json.dumps({"backbone": "x.keras", "weights": "none"}))
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir), load_run(other)], str(data), manifest_path)
    panel.runs.selectAll()
    assert panel.compare_button.isEnabled()
    panel.compare_button.click()
    text = panel.summary.toPlainText()
    assert "Weights" in text and "Same data: yes" in text  # the app's label, not the field name
    assert "the model's own" in text and "none (from scratch)" in text  # a model file starts from its own
    panel.runs.selectRow(0)
    with qtbot.waitSignal(panel.clone_requested) as signal:
        panel.clone_button.click()
    assert signal.args[0].backbone == "x.keras" and signal.args[0].weights == "imagenet"


def test_matrix_and_gallery_models_pass_qt_model_tester(qtbot, run, qtmodeltester):
    data, manifest_path, run_dir, _ = run
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir)], str(data), manifest_path)
    qtmodeltester.check(panel.confusion)
    qtmodeltester.check(panel.errors.gallery_model)


def test_train_panel_carries_calibration_strategy_and_cache_settings(qtbot):
    from tlstudio.core.settings import TrainSettings
    from tlstudio.gui.train_panel import TrainPanel

    panel = TrainPanel()
    qtbot.addWidget(panel)
    s = TrainSettings(backbone="x", calibrate=True, strategy="mirrored", feature_cache=False)
    panel.show_settings(s)
    back = panel.apply_to(TrainSettings(backbone="x"))
    assert (back.calibrate, back.strategy, back.feature_cache) == (True, "mirrored", False)
    panel.curves.renderer.stop()


def test_an_interrupted_run_can_be_resumed_from_the_panel(qtbot, tmp_path):
    from tlstudio.core.settings import TrainSettings

    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"status": "running", "backbone": "x"}))  # its process died
    (run_dir / "settings.json").write_text(json.dumps(TrainSettings(backbone="x").to_dict()))
    record = load_run(run_dir)
    assert record.status == "interrupted"
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([record], None, None)
    assert panel.resume_button.isEnabled()
    with qtbot.waitSignal(panel.resume_requested, timeout=2000) as signal:
        panel.resume_button.click()
    assert signal.args[0].run_dir == run_dir


def test_the_curves_rescale_once_points_arrive(qtbot):
    """An empty plot gets fixed limits (no ±0.04 ticks); they must not stick once training reports."""
    from tlstudio.gui.curves import CurvesWidget

    curves = CurvesWidget()
    qtbot.addWidget(curves)
    curves.render_now()
    renderer = curves.renderer
    assert renderer.ax_lr.get_xlim() == (0.0, 1.0)
    for epoch in range(6):
        curves.add_batch(epoch, 1, 1, 3.0)
        curves.add_epoch(epoch, {"loss": 3.0, "val_loss": 2.5, "accuracy": 0.5}, 1e-3)
    curves.render_now()
    assert renderer.ax_loss.get_ylim()[1] >= 3.0  # a loss above 1 is on the plot
    assert renderer.ax_lr.get_xlim()[1] >= 6  # every epoch is on the plot
    renderer.stop()


def test_grad_cam_of_a_run_whose_backbone_was_an_earlier_runs_model(qtbot, run):
    """The run's model.keras nests the earlier run's classifier (a model in a model): Grad-CAM
    finds the feature map inside it instead of failing."""
    from tlstudio.core.backbone.registry import build_backbone, resolve_backbone

    data, manifest_path, run_dir, _ = run
    earlier = run_dir.parent / "earlier.keras"
    (run_dir / "model.keras").rename(earlier)
    backbone = build_backbone(resolve_backbone(str(earlier)), weights="imagenet", image_size=32)
    build_classifier(backbone, 3, 32).save(run_dir / "model.keras")
    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir)], str(data), manifest_path)
    errors = panel.errors
    errors.gallery.setCurrentIndex(errors.gallery_model.index(0))
    errors.cam_button.click()
    qtbot.waitUntil(lambda: not errors.task.is_running(), timeout=60_000)
    qtbot.waitUntil(lambda: not errors.preview.pixmap().isNull(), timeout=5000)
    assert errors.preview.pixmap().width() == 256, errors.preview.text()
    assert "Grad-CAM for" in errors.preview.toolTip()
