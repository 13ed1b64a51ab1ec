"""Class weights for multi-label data: a positive weight per label in the probe's fit and the
fine-tune's binary cross-entropy, recorded in run.json and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from factory import make_multilabel_csv
from scipy.optimize import check_grad

from tlstudio.core import events as ev
from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import MULTI_LABEL_MAX_POS_WEIGHT
from tlstudio.core.training.multilabel_weights import WeightedBinaryCrossentropy, positive_weights
from tlstudio.core.training.probe_multilabel import _fit, binary_cross_entropy

TARGETS = np.array([[1, 0], [0, 1], [0, 1]], np.float32)
PROBS = np.array([[0.8, 0.3], [0.4, 0.9], [0.1, 0.6]], np.float32)
WEIGHTS = np.array([2.0, 0.5])
# by hand: -(w·y·log p + (1 - y)·log(1 - p)) for each of the six (image, label) pairs, then the mean
BY_HAND = (
    2 * -math.log(0.8)
    - math.log(0.7)
    - math.log(0.6)
    + 0.5 * -math.log(0.9)
    - math.log(0.9)
    + 0.5 * -math.log(0.6)
) / 6


def test_the_weighted_binary_cross_entropy_equals_the_hand_computed_value():
    assert binary_cross_entropy(TARGETS, PROBS, WEIGHTS) == pytest.approx(BY_HAND, rel=1e-6)
    keras_loss = float(WeightedBinaryCrossentropy(WEIGHTS)(TARGETS, PROBS))
    assert keras_loss == pytest.approx(BY_HAND, rel=1e-5)


def test_with_every_weight_one_it_is_keras_binary_cross_entropy():
    import keras

    plain = float(keras.losses.BinaryCrossentropy()(TARGETS, PROBS))
    assert float(WeightedBinaryCrossentropy([1.0, 1.0])(TARGETS, PROBS)) == pytest.approx(plain, rel=1e-5)


def test_the_loss_survives_a_keras_round_trip():
    import keras

    config = keras.saving.serialize_keras_object(WeightedBinaryCrossentropy(WEIGHTS))
    again = keras.saving.deserialize_keras_object(config)
    assert again.pos_weight == [2.0, 0.5]


def test_balanced_weighs_each_label_by_negatives_over_positives_clipped():
    y = np.zeros((1000, 3))
    y[:1, 0] = 1  # 1 positive in 1000: 999 would be clipped
    y[:500, 1] = 1  # balanced: 1
    y[:800, 2] = 1  # common: 200/800
    chosen = positive_weights("balanced", y, ["a", "b", "c"])
    assert chosen.weights.tolist() == [MULTI_LABEL_MAX_POS_WEIGHT, 1.0, 0.25]
    assert chosen.by_label(["a", "b", "c"]) == {"a": 100.0, "b": 1.0, "c": 0.25}
    assert chosen.note is None


def test_auto_weighs_only_when_some_label_is_rarer_than_the_imbalance_ratio():
    even = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
    assert positive_weights("auto", even, ["a", "b"]).weights is None
    rare = np.zeros((30, 2))
    rare[:4, 0], rare[:15, 1] = 1, 1  # a: 26 negatives per 4 positives, past 5:1
    assert positive_weights("auto", rare, ["a", "b"]).weights == pytest.approx([6.5, 1.0])
    assert positive_weights("none", rare, ["a", "b"]).weights is None


def test_balanced_says_which_labels_it_could_not_weigh():
    y = np.array([[1, 0], [0, 0], [1, 0]])  # b: no training image has it
    chosen = positive_weights("balanced", y, ["a", "b"])
    assert chosen.weights.tolist() == [0.5, 1.0] and "b left at 1" in chosen.note
    nothing = positive_weights("balanced", np.zeros((3, 2)), ["a", "b"])
    assert nothing.weights is None and "not used" in nothing.note


def test_the_probes_weighted_gradient_is_the_weighted_losss():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(20, 3)), (rng.random((20, 2)) < 0.3).astype(float)
    w = np.array([3.0, 0.7])
    captured = {}

    def spy(fun, x0, max_iter):  # catch the objective the probe minimises
        captured["f"] = fun
        return x0, 0, True

    import tlstudio.core.training.probe_multilabel as pm

    original, pm.lbfgs = pm.lbfgs, spy
    try:
        _fit(z, y, 0.1, w)
    finally:
        pm.lbfgs = original
    f = captured["f"]
    x0 = rng.normal(size=(4 * 2))
    assert check_grad(lambda v: f(v)[0], lambda v: f(v)[1], x0) < 1e-5
    weights = x0.reshape(4, 2)
    probs = 1 / (1 + np.exp(-(z @ weights[:-1] + weights[-1])))
    expected = 2 * binary_cross_entropy(y, probs, w) + 0.05 * (weights[:-1] ** 2).sum()
    assert f(x0)[0] == pytest.approx(expected, rel=1e-9)  # summed over labels = 2 × the mean


@pytest.mark.slow
def test_a_run_with_a_rare_label_records_its_weights_and_still_tunes_thresholds(tmp_path, tiny_backbone_file):
    from tlstudio.core.settings import Augmentation, TrainSettings
    from tlstudio.core.training.session import TrainingSession

    csv = make_multilabel_csv(tmp_path / "data", n=48, shares={"yellow": 0.05})
    s = TrainSettings(
        backbone=str(tiny_backbone_file),
        fine_tune_epochs=1,
        batch_size=16,
        augmentation=Augmentation(False, 0.0),
    )
    events: list = []
    out = tmp_path / "run"
    result = TrainingSession(s, csv, out, on_event=events.append).run()
    assert result.status == "completed", result.error
    run = json.loads((out / files.RUN_JSON).read_text())
    weights = run["class_weights"]
    assert set(weights) == set(run["classes"]) and weights["yellow"] > 5 > weights["red"]
    thresholds = json.loads((out / files.THRESHOLDS).read_text())
    assert all(0 < t < 1 for t in thresholds.values())
    history = json.loads((out / files.HISTORY).read_text())
    assert any(e["phase"] != "probe" for e in history["epochs"])  # the weighted loss compiled and ran
    assert "Class weights" in (out / files.REPORT).read_text(encoding="utf-8")
    assert not [e for e in events if isinstance(e, ev.RecipeChanged) and "class weights" in e.reason]
