"""Two runs' test accuracies: their 95% intervals and whether the difference is real (McNemar)."""

from __future__ import annotations

import pytest

from tlstudio.core.results.metrics import wilson_interval
from tlstudio.core.results.paired import EvaluatedRun, against_best, compare_pair, mcnemar, score


def predictions(right: list[bool], label: str = "cat") -> list[dict[str, object]]:
    """One record per test image, right or wrong, as evaluation.json holds them."""
    return [
        {
            "path": f"{label}/{i:03d}.png",
            "true": label,
            "predicted": label if ok else "dog",
            "confidence": 0.9,
        }
        for i, ok in enumerate(right)
    ]


def run(name: str, right: list[bool] | None, fingerprint: str | None = "same", **metrics) -> EvaluatedRun:
    return EvaluatedRun(name, metrics, predictions(right) if right is not None else None, fingerprint)


# 19 test images, as in the issue: transfer 13 right (0.684), baseline 11 right (0.579)
TRANSFER = [True] * 13 + [False] * 6
BASELINE = [True] * 9 + [False] * 4 + [True] * 2 + [False] * 4  # 4 only transfer, 2 only baseline


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs():
    a = [True] * 6 + [True, False]
    b = [False] * 6 + [True, False]
    assert mcnemar(a, b) == (6, 0, pytest.approx(2 * 0.5**6))  # 0.03125: all 6 discordant one way
    assert mcnemar([True, False], [True, False]) == (0, 0, 1.0)  # nothing separates them
    assert mcnemar(TRANSFER, BASELINE)[:2] == (4, 2)
    assert mcnemar(TRANSFER, BASELINE)[2] == pytest.approx(0.6875)  # P(|X-3|>=1), X~B(6, 1/2)


def test_the_issues_0684_vs_0579_on_19_images_is_a_tie_with_intervals():
    verdict = compare_pair(run("transfer", TRANSFER), run("baseline", BASELINE))
    assert (verdict.outcome, verdict.winner, verdict.paired, verdict.images) == ("tie", None, True, 19)
    assert verdict.text.startswith("tie: ") and "McNemar, 19 paired test images" in verdict.text
    assert "p=0.688" in verdict.text
    s = score(run("transfer", TRANSFER))
    assert s.accuracy == pytest.approx(13 / 19) and s.images == 19
    assert (s.low, s.high) == pytest.approx(wilson_interval(13, 19))
    assert s.interval == "0.46–0.85"


def test_a_real_paired_difference_names_the_better_run():
    better = [True] * 13 + [False] * 6
    worse = [True] * 7 + [False] * 12  # transfer alone right on 6, baseline alone on 0
    verdict = compare_pair(run("baseline", worse), run("transfer", better))
    assert (verdict.outcome, verdict.winner, verdict.loser) == ("better", "transfer", "baseline")
    assert verdict.p_value == pytest.approx(0.03125)
    assert verdict.text.startswith("transfer better than baseline: p=0.031 (McNemar, 19 paired test images")
    assert verdict.to_dict()["text"] == verdict.text


def test_runs_on_different_data_are_not_paired_and_overlapping_intervals_cannot_tell():
    verdict = compare_pair(run("a", TRANSFER, "one"), run("b", BASELINE, "two"))
    assert (verdict.outcome, verdict.paired, verdict.p_value) == ("cannot tell", False, None)
    assert "not paired" in verdict.text and "split manifests differ" in verdict.text
    assert "overlap" in verdict.text


def test_separate_intervals_say_better_even_unpaired():
    a = run("a", [True] * 95 + [False] * 5, "one")
    b = run("b", [True] * 40 + [False] * 60, "two")
    verdict = compare_pair(b, a)
    assert (verdict.outcome, verdict.winner, verdict.paired) == ("better", "a", False)
    assert "do not overlap" in verdict.text


def test_without_predictions_the_stored_interval_is_used():
    old = run("old", None, test_accuracy=0.579, test_images=19)  # an older run: no per-image records
    s = score(old)
    assert (s.low, s.high) == pytest.approx(wilson_interval(11, 19))
    verdict = compare_pair(run("new", TRANSFER), old)
    assert not verdict.paired and "old has no per-image test predictions" in verdict.text
    none = compare_pair(run("new", TRANSFER), EvaluatedRun("failed", {}))
    assert none.outcome == "cannot tell" and "failed has no test score" in none.text


def test_the_same_images_with_other_labels_or_none_in_common_are_not_paired():
    relabelled = [p | {"true": "dog"} for p in predictions(BASELINE)]  # relabelled since, same paths
    verdict = compare_pair(run("a", TRANSFER), EvaluatedRun("b", {}, relabelled))
    assert not verdict.paired and "different labels" in verdict.reason
    elsewhere = EvaluatedRun("c", {}, predictions(BASELINE, label="dog"))
    assert compare_pair(run("a", TRANSFER), elsewhere).reason == "the runs share no test image"


def test_every_run_is_set_against_the_best():
    runs = [run("scratch", [True] * 5 + [False] * 14), run("transfer", TRANSFER), run("b", BASELINE)]
    verdicts = against_best(runs)
    assert [(v.a, v.b) for v in verdicts] == [("transfer", "scratch"), ("transfer", "b")]
    assert [v.outcome for v in verdicts] == ["better", "tie"]
    assert against_best(runs[:1]) == []
