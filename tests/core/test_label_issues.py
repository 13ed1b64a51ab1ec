"""Likely label errors: out-of-sample probabilities from the probe, confident learning, and a real
backbone finding labels flipped on purpose."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tlstudio.core.training.label_issues import out_of_sample_probabilities, rank_label_issues

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def separable(n_per_class=30, classes=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    features = centres[labels] + rng.normal(0, 1, (len(labels), dim))
    return features, labels


def test_a_flipped_label_is_found_out_of_sample_and_ranked_first():
    features, labels = separable()
    given = labels.copy()
    given[[4, 40]] = [2, 0]  # two images carry the wrong class
    probs = out_of_sample_probabilities(features, given, 3)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(1), 1)
    # out of sample: a flipped image's own wrong label did not teach the probe to agree with it
    assert probs[4].argmax() == 0 and probs[40].argmax() == 1
    paths = [f"img{i}.png" for i in range(90)]
    issues = rank_label_issues(given, probs, paths, ["a", "b", "c"])
    assert {i.path for i in issues[:2]} == {"img4.png", "img40.png"}
    first = next(i for i in issues if i.path == "img4.png")
    assert (first.given, first.suggested) == ("c", "a") and first.confidence > 0.5 > first.given_probability
    assert len(issues) <= 6  # clean images are not listed wholesale
    assert {i.path for i in issues if i.confident} == {"img4.png", "img40.png"}  # the filter's own picks
    assert "img0.png" not in {i.path for i in issues}  # (the filter returns a mask, not indices)


def test_a_class_with_one_image_cannot_be_judged():
    features, labels = separable(n_per_class=5)
    labels[-1] = 3
    with pytest.raises(ValueError, match="at least 2 images"):
        out_of_sample_probabilities(features, labels, 4)


@pytest.mark.slow
def test_flipped_labels_are_among_the_first_entries_with_a_related_backbone(tmp_path):
    from bench_label_issues import run_task

    result = run_task("shapes", tmp_path, flip=0.1, per_class=30, seed=0)
    assert result["flipped"] == 15  # a tenth of 5 classes × 30
    assert result["precision_at_k"] >= 0.6, result  # random ranking: 0.1 (measured: 0.73)
    assert result["recall"] >= 0.9, result  # (measured: 1.0)


def test_off_distribution_lists_the_image_unlike_all_others_and_nothing_in_a_clean_folder():
    from tlstudio.core.training.label_issues import off_distribution

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 16)) + 4.0
    clean = np.concatenate([c + rng.normal(0, 0.3, (40, 16)) for c in centres])
    paths = [f"c{i // 40}/{i}.png" for i in range(120)]
    labels = [p.split("/")[0] for p in paths]
    assert off_distribution(clean, paths, labels) == []
    alien = np.concatenate([clean, -4.0 + rng.normal(0, 0.3, (1, 16))])
    found = off_distribution(alien, [*paths, "c0/alien.png"], [*labels, "c0"])
    assert [o.path for o in found] == ["c0/alien.png"]
    assert found[0].distance > found[0].fence and found[0].to_dict()["reason"].startswith("off-distribution")
    assert off_distribution(clean[:4], paths[:4], labels[:4]) == []


def test_confident_learning_runs_in_this_process_without_a_pool(monkeypatch):
    """cleanlab's filter forks a worker pool by default: 10× slower inside TensorFlow's process."""
    import cleanlab.filter

    asked = {}
    real = cleanlab.filter.find_label_issues

    def recording(labels, probs, **kwargs):
        asked.update(kwargs)
        return real(labels, probs, **kwargs)

    monkeypatch.setattr(cleanlab.filter, "find_label_issues", recording)
    features, labels = separable()
    probs = out_of_sample_probabilities(features, labels, 3)
    rank_label_issues(labels, probs, [f"{i}.png" for i in range(len(labels))], ["a", "b", "c"])
    assert asked.get("n_jobs") == 1
