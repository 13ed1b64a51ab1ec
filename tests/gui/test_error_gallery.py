"""The error gallery on its own (no TensorFlow): which folder a run's images come from, what a
missing image looks like, the move target, a stale Grad-CAM, the order of a cell's images."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from factory import encode, write
from PySide6.QtCore import Qt

from tlstudio.gui import error_gallery
from tlstudio.gui.error_gallery import CAM_HINT, ErrorGallery
from tlstudio.gui.evaluate_models import NOT_FOUND, UNREADABLE, placeholder

LABELS = ["blue", "green", "red"]


def blocks(seed: int) -> np.ndarray:
    """A 32×32 picture of four flat quadrants: the same after any scaling, far from noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((32, 32, 3), np.uint8)
    for y in (0, 16):
        for x in (0, 16):
            img[y : y + 16, x : x + 16] = rng.integers(0, 256, 3)
    return img


def prediction(path: str, true: str, predicted: str, confidence: float) -> dict:
    return {"path": path, "true": true, "predicted": predicted, "confidence": confidence}


@pytest.fixture
def run(tmp_path):
    """A run trained on a data folder of its own (not the project's), as its run.json says."""
    run_data = tmp_path / "elsewhere" / "data"
    predictions = [
        prediction("blue/b0.png", "blue", "red", 0.6),
        prediction("blue/b1.png", "blue", "red", 0.9),
        prediction("blue/b2.png", "blue", "red", 0.75),
        prediction("green/g0.png", "green", "green", 0.8),
        prediction("green/g1.png", "green", "green", 0.4),
        prediction("red/r0.png", "red", "green", 0.7),
    ]
    for i, p in enumerate(predictions):
        write(run_data / p["path"], encode(blocks(i), "PNG"))
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "completed", "data_dir": str(run_data)}))
    project_data = tmp_path / "project-data"
    for label in LABELS:
        (project_data / label).mkdir(parents=True)
    return run_dir, run_data, project_data, predictions


def gallery_with(qtbot, run_dir, project_data, predictions) -> ErrorGallery:
    gallery = ErrorGallery()
    qtbot.addWidget(gallery)
    gallery.set_data(project_data, None)
    gallery.show_run(run_dir, LABELS, predictions)
    return gallery


def thumb_of(gallery: ErrorGallery, row: int):
    model = gallery.gallery_model
    return model.data(model.index(row), Qt.ItemDataRole.DecorationRole).toImage()


def rgb(image, x: int, y: int) -> tuple[int, int, int]:
    c = image.pixelColor(x, y)
    return c.red(), c.green(), c.blue()


def test_a_runs_images_come_from_the_data_folder_its_run_json_records(qtbot, run):
    run_dir, run_data, project_data, predictions = run
    gallery = gallery_with(qtbot, run_dir, project_data, predictions)
    model = gallery.gallery_model
    assert len(model.items) == 4  # the errors
    for row, item in enumerate(model.items):
        real = blocks(predictions.index(item))
        thumb = thumb_of(gallery, row)
        assert (thumb.width(), thumb.height()) == (96, 96)
        for (x, y), (px, py) in (
            ((20, 20), (8, 8)),
            ((76, 20), (24, 8)),
            ((20, 76), (8, 24)),
            ((76, 76), (24, 24)),
        ):
            assert rgb(thumb, x, y) == tuple(int(v) for v in real[py, px]), (item["path"], x, y)
    assert gallery.run_data_dir == run_data
    # Grad-CAM and "Open folder" read the same file; a move would touch the project's folder: refused
    gallery.gallery.setCurrentIndex(model.index(0))
    assert gallery.image_path(str(model.items[0]["path"])) == run_data / str(model.items[0]["path"])
    assert gallery.cam_button.isEnabled() and gallery.folder_button.isEnabled()
    assert not gallery.move_button.isEnabled() and "project's data folder" in gallery.move_button.toolTip()
    gallery.move_current("green")
    assert (run_data / str(model.items[0]["path"])).is_file() and "Not moved" in gallery.gallery_title.text()


def test_without_a_recorded_folder_the_projects_is_used(qtbot, run, tmp_path):
    run_dir, run_data, _, predictions = run
    (run_dir / "run.json").write_text(json.dumps({"status": "completed"}))
    gallery = gallery_with(qtbot, run_dir, run_data, predictions)  # the project's folder holds them
    item = gallery.gallery_model.items[0]
    assert rgb(thumb_of(gallery, 0), 20, 20) == tuple(int(v) for v in blocks(predictions.index(item))[8, 8])
    gallery.gallery.setCurrentIndex(gallery.gallery_model.index(0))
    assert gallery.move_button.isEnabled()


def test_a_missing_or_unreadable_image_shows_a_placeholder_never_garbage(qtbot, run):
    run_dir, run_data, project_data, predictions = run
    (run_data / "blue" / "b1.png").unlink()  # the first error shown (most confident)
    (run_data / "red" / "r0.png").write_bytes(b"not an image")
    gallery = gallery_with(qtbot, run_dir, project_data, predictions)
    model = gallery.gallery_model
    paths = [item["path"] for item in model.items]
    missing, unreadable = paths.index("blue/b1.png"), paths.index("red/r0.png")
    expected = placeholder(NOT_FOUND).toImage()
    assert thumb_of(gallery, missing) == expected
    assert NOT_FOUND in model.data(model.index(missing), Qt.ItemDataRole.ToolTipRole)
    assert thumb_of(gallery, unreadable) == placeholder(UNREADABLE).toImage()
    gallery.gallery.setCurrentIndex(model.index(missing))
    assert not gallery.cam_button.isEnabled()  # nothing to explain
    gallery.show_gradcam()
    assert NOT_FOUND in gallery.preview.text() and gallery.task is None


def test_move_to_class_offers_the_selected_images_predicted_class(qtbot, run):
    run_dir, _, project_data, predictions = run
    gallery = gallery_with(qtbot, run_dir, project_data, predictions)
    model = gallery.gallery_model
    for row in range(len(model.items)):
        gallery.gallery.setCurrentIndex(model.index(row))
        assert gallery.target.currentText() == model.items[row]["predicted"] != LABELS[0]


def test_a_cell_lists_its_images_most_confidently_wrong_first(qtbot, run):
    run_dir, _, project_data, predictions = run
    gallery = gallery_with(qtbot, run_dir, project_data, predictions)
    gallery.show_cell("blue", "red")
    assert [item["confidence"] for item in gallery.gallery_model.items] == [0.9, 0.75, 0.6]
    assert "most confident first" in gallery.gallery_title.text()
    gallery.show_cell("green", "green")  # right answers: the least sure first
    assert [item["confidence"] for item in gallery.gallery_model.items] == [0.4, 0.8]
    assert "least confident first" in gallery.gallery_title.text()


def test_a_grad_cam_goes_when_the_selection_changes(qtbot, run, monkeypatch):
    run_dir, _, project_data, predictions = run
    release = threading.Event()
    asked = []

    def fake_job(run_dir, path, class_name):
        asked.append(path)
        release.wait(10)
        return np.full((256, 256, 3), 200, np.uint8), 0.9

    monkeypatch.setattr(error_gallery, "gradcam_job", fake_job)
    gallery = gallery_with(qtbot, run_dir, project_data, predictions)
    model = gallery.gallery_model
    gallery.gallery.setCurrentIndex(model.index(0))
    release.set()
    gallery.cam_button.click()
    qtbot.waitUntil(lambda: not gallery.preview.pixmap().isNull(), timeout=10_000)
    gallery.gallery.setCurrentIndex(model.index(1))  # another image: the first one's map must go
    assert gallery.preview.pixmap().isNull() and gallery.preview.text() == CAM_HINT
    assert gallery.preview.toolTip() == ""

    release.clear()  # one still computing when the selection changes is dropped
    gallery.cam_button.click()
    computing = gallery.task
    gallery.gallery.setCurrentIndex(model.index(2))
    assert gallery.cam_button.text() == "Grad-CAM" and gallery.preview.text() == CAM_HINT
    release.set()
    computing.wait()
    qtbot.wait(50)  # its result, had it been delivered, would arrive now
    assert gallery.preview.pixmap().isNull() and gallery.preview.text() == CAM_HINT
    gallery.show_cell("blue", "red")  # a new list clears it too
    assert gallery.preview.text() == CAM_HINT


def test_a_grad_cam_failure_is_shown_whole(qtbot, run, monkeypatch):
    run_dir, _, project_data, predictions = run
    long_reason = (
        "no convolutional feature map found in backbone: Grad-CAM needs a layer with a 2-D spatial output "
        "(a SavedModel/Hub backbone at /a/very/long/path/to/some/deeply/nested/folder/of/models/saved_model "
        "returns only a vector)"
    )

    class GradCamError(Exception):  # (the real one's module imports TensorFlow: slow here)
        pass

    def failing_job(run_dir, path, class_name):
        raise GradCamError(long_reason)

    monkeypatch.setattr(error_gallery, "gradcam_job", failing_job)
    gallery = gallery_with(qtbot, run_dir, project_data, predictions)
    gallery.resize(420, 600)
    gallery.show()
    gallery.gallery.setCurrentIndex(gallery.gallery_model.index(0))
    gallery.cam_button.click()
    qtbot.waitUntil(lambda: gallery.preview.text().startswith("Grad-CAM failed"), timeout=10_000)
    preview = gallery.preview
    assert preview.wordWrap()
    assert preview.text().replace("\u200b", "") == f"Grad-CAM failed: {long_reason}"
    assert "GradCamError" in preview.toolTip() and "Traceback" in preview.toolTip()
    # it fits the panel's width: wrapped over lines, not one line wider than the label
    assert preview.minimumSizeHint().width() <= preview.width()
    assert preview.heightForWidth(preview.width()) > 2 * preview.fontMetrics().height()
    gallery.task.wait()


def test_the_label_views_gallery_shows_a_placeholder_for_a_missing_image_never_unfilled_memory(
    qtbot, tmp_path
):
    from tlstudio.gui.evaluate_models import GalleryModel

    model = GalleryModel()
    item = {"path": "red/gone.png", "true": "red", "predicted": "blue", "confidence": 0.9}
    model.set_items([item], tmp_path)
    icon = model.data(model.index(0), Qt.ItemDataRole.DecorationRole)
    expected = placeholder(NOT_FOUND).toImage()
    assert icon.toImage() == expected  # a grey square that says so, the same every time
