"""A run with the greedy checkpoint soup: run.json, history.json and the report say what it did, and the
exported model holds the souped weights; a small folder skips it and says why."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tlstudio.core import events as ev
from tlstudio.core.settings import Augmentation, TrainSettings
from tlstudio.core.training import soup
from tlstudio.core.training.session import TrainingSession

pytestmark = pytest.mark.slow


def settings_for(backbone, **changes) -> TrainSettings:
    return TrainSettings(
        backbone=str(backbone),
        fine_tune_epochs=8,
        batch_size=8,
        learning_rate=0.3,  # (fine-tune at 0.03: at lower rates the loss falls every epoch, no soup helps)
        augmentation=Augmentation(flip=False, rotation=0.0),
        interpolate=False,  # the exported weights are then the best checkpoint: here, the soup
        soup_checkpoints=3,
    ).but(**changes)


def test_a_run_with_the_soup_records_it_and_exports_the_souped_weights(
    colour_data, tiny_backbone_file, tmp_path, monkeypatch
):
    souped: list[dict[str, np.ndarray]] = []
    original = soup.greedy_soup

    def keeping(variables, candidates, evaluate):
        result = original(variables, candidates, evaluate)
        souped.append({v.path: np.array(v.numpy()) for v in variables})
        return result

    monkeypatch.setattr(soup, "greedy_soup", keeping)
    events: list[ev.Event] = []
    run = tmp_path / "run"
    result = TrainingSession(settings_for(tiny_backbone_file), colour_data, run, on_event=events.append).run()
    assert result.status == "completed", result.error
    said = [e for e in events if isinstance(e, ev.Souped)]
    assert len(said) == 1 and not said[0].skipped and said[0].kept == 3
    recorded = json.loads((run / "run.json").read_text())["soup"]
    assert recorded["used"] and len(recorded["ingredients"]) >= 2 and recorded["kept"] == 3
    assert recorded["val_loss"] <= recorded["best_val_loss"]
    assert recorded["best_checkpoint"]  # it beat the probe and every single epoch on validation
    assert json.loads((run / "history.json").read_text())["soup"]["tried"][0]["accepted"]
    metrics = json.loads((run / "metrics.json").read_text())  # balanced accuracy and macro F1 beside accuracy
    for key in ("balanced_accuracy", "macro_f1"):
        assert metrics[f"test_{key}_low"] <= metrics[f"test_{key}"] <= metrics[f"test_{key}_high"], key
    report = (run / "report.html").read_text()
    assert "<h2>Checkpoint soup</h2>" in report and "average of epochs" in report
    exported = keras.models.load_model(run / "model.keras", compile=False)
    held = {v.path: np.array(v.numpy()) for v in exported.weights}
    assert len(souped) == 1 and set(souped[0]) <= set(held), (sorted(souped[0]), sorted(held))
    for path, weights in souped[0].items():  # the fine-tuned variables, as the soup left them
        np.testing.assert_allclose(held[path], weights, rtol=1e-6, atol=1e-7, err_msg=path)


def test_a_small_folder_skips_the_soup_and_says_why(colour_data, tiny_backbone_file, tmp_path):
    events: list[ev.Event] = []
    run = tmp_path / "small"
    s = settings_for(tiny_backbone_file, fine_tune_epochs=1, val_fraction=0.05)
    result = TrainingSession(s, colour_data, run, on_event=events.append).run()
    assert result.status == "completed", result.error
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["small_folder"]
    assert recorded["soup"] == {"used": False, "skipped": soup.SKIP_SMALL_FOLDER}
    assert [e.skipped for e in events if isinstance(e, ev.Souped)] == [soup.SKIP_SMALL_FOLDER]
    assert "Not made: no validation split" in (run / "report.html").read_text()
