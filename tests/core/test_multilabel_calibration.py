"""Calibration of multi-label runs: Platt scaling per label on validation, baked into the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factory import make_multilabel_csv

from tlstudio.core.results import run_folder as files
from tlstudio.core.training.multilabel_calibration import fit_platt, logits_of


def test_platt_scaling_recovers_a_known_miscalibration_as_scikit_learn_does():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 20000)  # an over-confident label: its true probability is sigmoid(0.5·z - 1)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z - 1)))).astype(int)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(-1.0, abs=0.06)
    reference = LogisticRegression(C=1e6).fit(z[:, None], y)  # the prior (one image) is negligible here
    assert a == pytest.approx(reference.coef_[0, 0], abs=0.01)
    assert b == pytest.approx(reference.intercept_[0], abs=0.01)


def test_a_separable_label_gets_a_finite_slope_and_a_one_sided_one_none():
    a, b = fit_platt(np.array([-3.0, -2.0, 2.0, 3.0]), np.array([0, 0, 1, 1]))
    assert 0 < a < 10 and np.isfinite(b)
    assert fit_platt(np.array([-1.0, 1.0]), np.array([1, 1])) is None


def test_logits_invert_the_sigmoid():
    z = np.array([-5.0, 0.0, 3.0])
    assert logits_of(1 / (1 + np.exp(-z))) == pytest.approx(z, abs=1e-9)


@pytest.mark.slow
def test_calibrate_bakes_each_labels_scaling_into_the_export_before_the_thresholds(
    tmp_path, tiny_backbone_file
):
    import tensorflow as tf

    from tlstudio.core.data.pipeline import load_for_model
    from tlstudio.core.data.split import Manifest
    from tlstudio.core.deploy.restore import classifier_from_run
    from tlstudio.core.settings import Augmentation, TrainSettings
    from tlstudio.core.training.session import TrainingSession

    csv = make_multilabel_csv(tmp_path / "data", n=48, shares={"yellow": 0.1})
    s = TrainSettings(
        backbone=str(tiny_backbone_file),
        fine_tune_epochs=0,
        batch_size=16,
        augmentation=Augmentation(False, 0.0),
        class_weights="balanced",  # shifts the probabilities: the shift b must undo it
        calibrate=True,
    )
    out = tmp_path / "run"
    result = TrainingSession(s, csv, out).run()
    assert result.status == "completed", result.error
    fitted = json.loads((out / files.CALIBRATION).read_text())
    metrics = json.loads((out / files.METRICS).read_text())
    assert metrics["val_log_loss_calibrated"] <= metrics["val_log_loss_before_calibration"] + 1e-9
    assert "Platt scaling per label" in (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    classes = json.loads((out / files.RUN_JSON).read_text())["classes"]
    assert set(fitted) == set(classes) and any(abs(f["shift"]) > 1e-3 for f in fitted.values())
    # the exported SavedModel gives sigmoid(a·z + b) of the uncalibrated best checkpoint's logits z
    raw, _, size, _ = classifier_from_run(out)
    entries = Manifest.load(out / files.MANIFEST).entries[:8]
    images = np.stack([load_for_model(csv.parent / e.path, size) for e in entries]).astype(np.float32)
    z = logits_of(raw.predict_on_batch(images))
    scale = np.array([fitted[c]["scale"] for c in classes])
    shift = np.array([fitted[c]["shift"] for c in classes])
    loaded = tf.saved_model.load(str(out / files.SAVED_MODEL))
    served = loaded.signatures["serving_default"](images=tf.constant(images))["output_0"].numpy()
    assert served == pytest.approx(1 / (1 + np.exp(-(scale * z + shift))), abs=1e-4)
    # the thresholds were tuned on the calibrated probabilities and the test split scored with them
    evaluation = json.loads((out / files.EVALUATION).read_text())
    assert evaluation["thresholds"] == json.loads((out / files.THRESHOLDS).read_text())
    # an export rebuilt from the best checkpoint (the run's export lost) applies calibration.json too
    from tlstudio.core.deploy.restore import export_checkpoint

    (out / files.MODEL).unlink()
    export_checkpoint(out)
    again = tf.saved_model.load(str(out / files.SAVED_MODEL))
    rebuilt = again.signatures["serving_default"](images=tf.constant(images))["output_0"].numpy()
    assert rebuilt == pytest.approx(served, abs=1e-5)
