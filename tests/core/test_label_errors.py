"""The gallery by label error's core: a label's missed and false images, the most wrong first."""

from __future__ import annotations

import numpy as np
import pytest

from tlstudio.core.results.label_errors import label_error_counts, label_errors
from tlstudio.core.results.multilabel_evaluation import summarize_multilabel

THRESHOLDS = {"cat": 0.4, "dog": 0.6}


def record(path: str, true: list[str], cat: float, dog: float) -> dict:
    return {"path": path, "true": true, "probabilities": {"cat": cat, "dog": dog}}


PREDICTIONS = [
    record("a.png", ["cat"], 0.35, 0.1),  # cat missed by 0.05
    record("b.png", ["cat", "dog"], 0.05, 0.6),  # cat missed by 0.35; dog at its threshold: given
    record("c.png", [], 0.4, 0.59),  # cat false (at its threshold) by 0.0; dog just under: right
    record("d.png", ["dog"], 0.9, 0.2),  # cat false by 0.5; dog missed by 0.4
    record("e.png", ["cat"], 0.8, 0.1),  # right
]


def test_a_labels_missed_and_false_images_most_wrong_first():
    cat = label_errors(PREDICTIONS, THRESHOLDS, "cat")
    assert cat.label == "cat" and cat.threshold == 0.4
    assert [e["path"] for e in cat.missed] == ["b.png", "a.png"]
    assert [e["path"] for e in cat.false] == ["d.png", "c.png"]
    assert [round(e["distance"], 6) for e in cat.missed + cat.false] == [0.35, 0.05, 0.5, 0.0]
    b = cat.missed[0]
    assert b["kind"] == "missed" and b["true"] == ["cat", "dog"] and b["predicted"] == ["dog"]
    assert b["probability"] == 0.05 and b["threshold"] == 0.4
    assert cat.false[0]["kind"] == "false" and cat.false[0]["predicted"] == ["cat"]
    dog = label_errors(PREDICTIONS, THRESHOLDS, "dog")
    assert [e["path"] for e in dog.missed] == ["d.png"] and dog.false == []
    assert label_error_counts(PREDICTIONS, THRESHOLDS) == {"cat": (2, 2), "dog": (1, 0)}


def test_equal_distances_keep_a_stable_order_by_path():
    same = [record(f"{name}.png", [], 0.7, 0.0) for name in "cab"]
    assert [e["path"] for e in label_errors(same, THRESHOLDS, "cat").false] == ["a.png", "b.png", "c.png"]


def test_an_unknown_label_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown label 'bird'.*cat, dog"):
        label_errors(PREDICTIONS, THRESHOLDS, "bird")


def test_it_agrees_with_the_evaluations_missed_and_false_labels():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    targets = (rng.random((60, 3)) < 0.4).astype(float)
    probs = np.clip(targets * 0.3 + rng.random((60, 3)) * 0.7, 0, 1)
    thresholds = [0.4, 0.5, 0.55]
    evaluation = summarize_multilabel(
        labels, thresholds, targets, probs, [f"{i}.png" for i in range(60)], resamples=10
    )
    data = evaluation.to_dict(with_predictions=True)
    for label in labels:
        errors = label_errors(data["predictions"], data["thresholds"], label)
        assert {e["path"] for e in errors.missed} == {
            p["path"] for p in evaluation.predictions if label in p["missed"]
        }
        assert {e["path"] for e in errors.false} == {
            p["path"] for p in evaluation.predictions if label in p["false"]
        }
        distances = [e["distance"] for e in errors.missed]
        assert distances == sorted(distances, reverse=True) and errors.missed and errors.false
