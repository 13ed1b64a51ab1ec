"""The gallery by label error of a multi-label run in the Evaluate panel: a label's missed and false
images as the core lists them, the placeholder of an image that is gone, Grad-CAM of the label."""

from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import Qt

from tlstudio.core.data.labels_csv import read_labels_csv
from tlstudio.core.data.pipeline import multi_hot
from tlstudio.core.results import run_folder as files
from tlstudio.core.results.label_errors import label_errors
from tlstudio.core.results.multilabel_evaluation import summarize_multilabel
from tlstudio.core.results.run_history import load_run
from tlstudio.gui.error_gallery import gradcam_job
from tlstudio.gui.evaluate_models import NOT_FOUND, placeholder
from tlstudio.gui.evaluate_panel import EvaluatePanel
from tlstudio.gui.try_panel import to_pixmap

GONE = "images/gone.png"


def test_a_label_shows_its_missed_and_false_images_and_its_grad_cam(qtbot, tmp_path, multilabel_probe_run):
    trained, csv = multilabel_probe_run
    run_dir = tmp_path / "run"  # the trained run's model, with an evaluation of every image that has errors
    run_dir.mkdir()
    for name in (files.MODEL, files.LABELS, files.RUN_JSON, files.SETTINGS, files.METRICS):
        (run_dir / name).write_bytes((trained / name).read_bytes())
    table = read_labels_csv(csv)
    labels = table.labels
    paths = [r for r, _ in table.rows] + [GONE]
    targets = multi_hot([s for _, s in table.rows] + [(labels[0],)], labels)
    rng = np.random.default_rng(0)
    probs = np.clip(targets * 0.3 + rng.random(targets.shape) * 0.7, 0, 1)
    probs[-1, 0] = 0.01  # the image that is gone: its first label missed, the most wrong
    thresholds = dict(zip(labels, [0.5, 0.4, 0.6, 0.5], strict=True))
    evaluation = summarize_multilabel(
        labels, [thresholds[x] for x in labels], targets, probs, paths, resamples=20
    )
    data = evaluation.to_dict(with_predictions=True)
    (run_dir / files.EVALUATION).write_text(json.dumps(data))

    panel = EvaluatePanel()
    qtbot.addWidget(panel)
    panel.show_runs([load_run(run_dir)], str(csv), None)
    panel.show_evaluation(run_dir)
    gallery = panel.label_errors
    assert gallery.isVisibleTo(panel) and not panel.errors.isVisibleTo(panel)
    assert gallery.label.count() == len(labels)

    for label in (labels[0], labels[2]):
        gallery.label.setCurrentIndex(gallery.label.findData(label))
        gallery.label.activated.emit(gallery.label.currentIndex())
        core = label_errors(data["predictions"], data["thresholds"], label)
        assert core.missed and core.false
        assert [i["path"] for i in gallery.missed_model.items] == [e["path"] for e in core.missed]
        assert [i["path"] for i in gallery.false_model.items] == [e["path"] for e in core.false]
        assert f"{len(core.missed)} image(s)" in gallery.missed_title.text()
    gallery.show_label(labels[0])  # the gone image is its first missed one: a placeholder says so
    assert gallery.missed_model.items[0]["path"] == GONE
    thumb = gallery.missed_model.data(gallery.missed_model.index(0), Qt.ItemDataRole.DecorationRole)
    assert thumb.toImage() == placeholder(NOT_FOUND).toImage()
    gallery.missed_view.setCurrentIndex(gallery.missed_model.index(0))
    assert not gallery.cam_button.isEnabled()

    false = gallery.false_view
    false.setCurrentIndex(gallery.false_model.index(0))  # a found image: the other list lets go
    assert gallery.current_item() is gallery.false_model.items[0]
    assert not gallery.missed_view.selectionModel().hasSelection() and gallery.cam_button.isEnabled()
    gallery.cam_button.click()
    qtbot.waitUntil(
        lambda: not gallery.preview.pixmap().isNull() or "failed" in gallery.preview.text(), timeout=60_000
    )
    assert not gallery.preview.pixmap().isNull(), gallery.preview.text() + gallery.preview.toolTip()
    assert gallery.preview.pixmap().width() == 256
    assert f"Grad-CAM for '{labels[0]}'" in gallery.preview.toolTip()
    item = gallery.false_model.items[0]  # the chosen label's map, not the most probable label's
    expected, _ = gradcam_job(run_dir, gallery.image_path(item["path"]), labels[0])
    assert gallery.preview.pixmap().toImage() == to_pixmap(expected).toImage()

    panel.show_evaluation(tmp_path / "no-evaluation")  # another run: the error gallery is back
    assert not gallery.isVisibleTo(panel) and panel.errors.isVisibleTo(panel)


def test_predictions_it_cannot_read_are_named_not_shown_wrong(qtbot, tmp_path):
    from tlstudio.gui.label_error_gallery import LabelErrorGallery

    gallery = LabelErrorGallery()
    qtbot.addWidget(gallery)
    record = {"path": "a.png", "true": ["cat"], "probabilities": {"cat": 0.1}}  # no "dog"
    evaluation = {"task": "multi_label", "thresholds": {"cat": 0.5, "dog": 0.5}, "predictions": [record]}
    assert gallery.show_run(tmp_path, evaluation)
    assert (
        "Cannot read the run's predictions" in gallery.missed_title.text()
        and "dog" in gallery.missed_title.text()
    )
    assert gallery.label.count() == 0 and not gallery.missed_model.items and not gallery.false_model.items
    assert not gallery.show_run(tmp_path, {"task": "single_label"}) and gallery.isHidden()
