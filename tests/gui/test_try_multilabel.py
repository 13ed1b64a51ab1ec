"""Try it on a multi-label run: the labels given, and Grad-CAM of the most probable label, named."""

from __future__ import annotations

import numpy as np
from factory import encode, write

from tlstudio.core.data.pipeline import load_for_model
from tlstudio.core.project import Project
from tlstudio.core.results.gradcam import gradcam_for_run
from tlstudio.core.results.try_it import overlay_for
from tlstudio.gui.state import AppState
from tlstudio.gui.try_panel import OVERLAY, TryPanel, to_pixmap


def test_try_it_shows_the_grad_cam_of_the_top_label_and_names_it(qtbot, tmp_path, multilabel_probe_run):
    run_dir, csv = multilabel_probe_run
    project = Project(path=tmp_path / "p.tlstudio.json", data_dir=str(csv))
    project.record_run(run_dir, "completed", {})
    panel = TryPanel(state=AppState(project))
    qtbot.addWidget(panel)
    image = np.full((32, 32, 3), 128, np.uint8)
    image[:16, 16:] = (30, 220, 30)  # green and red, each in its quadrant
    image[16:, :16] = (220, 30, 30)
    path = write(tmp_path / "both.png", encode(image, "PNG"))
    panel.add_images([path])
    qtbot.waitUntil(lambda: str(path) in panel.pictures, timeout=60_000)
    qtbot.waitUntil(lambda: not panel.task.is_running(), timeout=10_000)

    cam, labels = gradcam_for_run(run_dir)
    probs = np.asarray(cam._classifier(load_for_model(path, cam.image_size)[None].astype(np.float32)))[0]
    top, second = (labels[i] for i in np.argsort(-probs)[:2])
    assert f"Grad-CAM: where it sees <b>{top}</b>" in panel.verdict.text()

    def shown_for(label: str):
        heat = cam.heatmap(load_for_model(path, cam.image_size), labels.index(label))[0]
        return to_pixmap(overlay_for(path, heat, OVERLAY)).toImage()

    assert panel.pictures[str(path)].toImage() == shown_for(top) != shown_for(second)
