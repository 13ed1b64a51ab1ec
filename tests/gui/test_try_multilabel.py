"""Try it on a multi-label run: Grad-CAM of the most probable label, named; a label clicked: its own."""

from __future__ import annotations

import numpy as np
import pytest
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
    qtbot.waitUntil(lambda: not panel.task.is_running() and panel.tryout is not None, timeout=10_000)

    cam, labels = gradcam_for_run(run_dir)
    probs = np.asarray(cam._classifier(load_for_model(path, cam.image_size)[None].astype(np.float32)))[0]
    top, second = (labels[i] for i in np.argsort(-probs)[:2])
    text = panel.verdict.text()
    assert "Grad-CAM for: " in text and f"<b>{top}</b>" in text and f'href="label:{second}"' in text

    def shown_for(label: str):
        heat = cam.heatmap(load_for_model(path, cam.image_size), labels.index(label))[0]
        return to_pixmap(overlay_for(path, heat, OVERLAY)).toImage()

    assert panel.pictures[str(path)].toImage() == shown_for(top) != shown_for(second)

    panel.verdict.linkActivated.emit(f"label:{second}")  # the user clicks another label
    qtbot.waitUntil(lambda: panel.pictures[str(path)].toImage() == shown_for(second), timeout=30_000)
    assert panel.picture.pixmap().toImage() == shown_for(second)
    assert f"<b>{second}</b>" in panel.verdict.text() and f'href="label:{top}"' in panel.verdict.text()
    panel.label_cam.task.wait()
    with pytest.raises(ValueError, match="unknown label 'nope'"):
        panel.tryout.heat_for(path, "nope")
