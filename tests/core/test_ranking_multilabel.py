"""Ranking backbones on multi-label data: the probe's out-of-sample macro mAP, k-NN, LogME, order and ties."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factory import make_multilabel_csv

from tlstudio.core.training import ranking_multilabel as ml


def labelled_features(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(targets, features that show the labels, features of noise)."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, 3)) < [0.5, 0.3, 0.2]).astype(np.float64)
    good = targets @ rng.normal(0, 2, (3, 12)) + rng.normal(0, 1, (n, 12))
    return targets, good, rng.normal(0, 1, (n, 12))


def test_macro_map_is_sklearns_average_precision_averaged_over_the_labels_with_a_positive():
    from sklearn.metrics import average_precision_score

    targets, _, _ = labelled_features()
    scores = np.random.default_rng(1).random(targets.shape) + targets * 0.3
    targets[:, 2] = 0  # a label without a positive has no AP: left out
    expected = np.mean([average_precision_score(targets[:, j], scores[:, j]) for j in (0, 1)])
    assert ml.macro_map(targets, scores) == pytest.approx(expected)


def test_the_probe_scores_each_image_out_of_sample_and_ranks_good_features_above_noise():
    targets, good, noise = labelled_features()
    wide_noise = np.random.default_rng(2).normal(0, 1, (90, 80))  # a probe fitted on all would memorise
    good_probs = ml.out_of_sample_label_probabilities(good, targets, seed=0)
    noise_probs = ml.out_of_sample_label_probabilities(wide_noise, targets, seed=0)
    assert good_probs.shape == targets.shape
    assert ml.macro_map(targets, good_probs) > 0.9
    assert ml.macro_map(targets, noise_probs) < 0.6  # chance is each label's share: 0.2–0.5
    assert ml.macro_map(targets, ml.knn_label_scores(good, targets)) > 0.8
    assert ml.macro_map(targets, ml.knn_label_scores(noise, targets)) < 0.6
    with pytest.raises(ValueError, match="at least 2 training images"):
        ml.out_of_sample_label_probabilities(good[:5], np.eye(5, 3))


def test_ties_follow_the_paired_bootstrap_of_the_macro_map_difference():
    targets, good, noise = labelled_features()
    draws = np.random.default_rng(0).integers(0, 90, (200, 90))
    best = ml.out_of_sample_label_probabilities(good, targets, seed=0)
    worse = ml.out_of_sample_label_probabilities(noise, targets, seed=0)
    nudged = best + np.random.default_rng(3).normal(0, 1e-3, best.shape)  # the same ranking, near enough
    assert ml.tied_on_macro_map(targets, best, best, draws)  # the best is tied with itself
    assert ml.tied_on_macro_map(targets, best, nudged, draws)
    assert not ml.tied_on_macro_map(targets, best, worse, draws)
    differences = [ml.macro_map(targets[d], best[d]) - ml.macro_map(targets[d], worse[d]) for d in draws]
    assert np.percentile(differences, 2.5) > 0  # the rule, by hand
    low, high = ml.bootstrap_interval(targets, best, draws)
    assert low <= ml.macro_map(targets, best) <= high


def test_logme_takes_each_labels_indicator_as_a_target():
    from tlstudio.core.training.ranking import logme

    targets, good, noise = labelled_features()
    assert logme(good, targets) > logme(noise, targets)
    single = targets[:, 0].astype(int)  # class indices: the same targets as their one-hot columns
    two_columns = np.stack([1 - single, single], 1).astype(float)
    assert logme(good, two_columns) == pytest.approx(logme(good, single))


@pytest.mark.slow
def test_cli_rank_on_a_labels_csv_orders_by_macro_map_with_ties(tmp_path, tiny_backbone_file, capsys):
    import keras

    from tlstudio.cli import main
    from tlstudio.core.data.source import inspect_data
    from tlstudio.core.data.split import make_split

    data = make_multilabel_csv(tmp_path / "data", n=48)
    noise = tmp_path / "untrained.keras"
    keras.utils.set_random_seed(0)
    keras.models.clone_model(keras.models.load_model(tiny_backbone_file)).save(noise)
    names = f"{noise},{tiny_backbone_file}"
    assert main(["rank", str(data), "--backbones", names, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "multi_label" and out["metric"] == "macro_map"
    assert out["classes"] == ["blue", "green", "red", "yellow"]
    train = make_split(inspect_data(data).images, multi_label=True).subset("train")
    assert out["images"] == len(train)
    rows = out["ranking"]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert rows[0]["tied_with_best"] and all(r["metric"] == "macro_map" for r in rows)
    for r in rows:
        assert r["interval"][0] <= r["score"] <= r["interval"][1] and 0 < r["score"] <= 1
    assert out["indistinguishable_from_best"] == [r["backbone"] for r in rows if r["tied_with_best"]]
    assert main(["rank", str(data), "--backbones", names]) == 0
    text = capsys.readouterr().out
    assert "probe mAP" in text and "macro mAP" in text
