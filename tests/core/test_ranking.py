"""Ranking backbones on the user's data: LogME, k-NN and the probe, with intervals and ties."""

from __future__ import annotations

import numpy as np
import pytest

from tlstudio.core.training.ranking import knn_correct, logme


def logme_by_hand(f: np.ndarray, labels: np.ndarray, iterations: int = 11) -> float:
    """The same evidence with explicit matrices (A = αI + βFᵀF, its log-determinant and inverse)."""
    n, d = f.shape
    out = []
    for c in np.unique(labels):
        y = (labels == c).astype(float)
        alpha, beta = 1.0, 1.0
        for _ in range(iterations):
            a = alpha * np.eye(d) + beta * f.T @ f
            m = beta * np.linalg.solve(a, f.T @ y)
            gamma = d - alpha * np.trace(np.linalg.inv(a))
            new_alpha, new_beta = gamma / (m @ m + 1e-10), (n - gamma) / (((y - f @ m) ** 2).sum() + 1e-10)
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if done:
                break
        a = alpha * np.eye(d) + beta * f.T @ f
        m = beta * np.linalg.solve(a, f.T @ y)
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.linalg.slogdet(a)[1]
            - beta / 2 * ((y - f @ m) ** 2).sum()
            - alpha / 2 * m @ m
            - n / 2 * np.log(2 * np.pi)
        )
        out.append(evidence / n)
    return float(np.mean(out))


@pytest.mark.parametrize("n, d", [(60, 8), (20, 40)])  # more images than features, and fewer
def test_logme_matches_the_evidence_computed_with_explicit_matrices(n, d):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 3, n)
    features = rng.normal(0, 1, (n, d)) + labels[:, None] * rng.normal(0, 1, d)
    assert logme(features, labels) == pytest.approx(logme_by_hand(features, labels), rel=1e-6, abs=1e-8)


def test_logme_and_knn_prefer_features_that_separate_the_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    centres = rng.normal(0, 3, (4, 16))
    good = centres[labels] + rng.normal(0, 1, (120, 16))
    noise = rng.normal(0, 1, (120, 16))
    assert logme(good, labels) > logme(noise, labels)
    assert knn_correct(good, labels).mean() > 0.9 > 0.5 > knn_correct(noise, labels).mean()


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    """A related pretrained backbone (a CNN trained on letters), the same CNN untrained, and data:
    drawn digits, which neither has seen."""
    import keras
    from factory import GLYPHS_A, GLYPHS_B, make_drawn_dataset, pretrain_source_model

    root = tmp_path_factory.mktemp("rank")
    related, _ = pretrain_source_model(root / "letters.keras", GLYPHS_A, per_class=120, epochs=4)
    untrained = keras.models.clone_model(keras.models.load_model(related))
    untrained.save(root / "untrained.keras")
    data = make_drawn_dataset(root / "digits", GLYPHS_B, per_class=30, seed=5)
    return data, related, root / "untrained.keras"


def test_rank_puts_the_related_pretrained_backbone_first_with_intervals(candidates):
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.training.ranking import rank_backbones

    data, related, untrained = candidates
    from tlstudio.core.data.split import make_split

    report = inspect_folder(data)
    ranked = rank_backbones(report, [str(untrained), str(related)])
    trained_on = len(make_split(report.images).subset("train"))  # the training split only
    assert [r.backbone for r in ranked] == [str(related), str(untrained)]
    best, other = ranked
    assert best.interval[0] <= best.score <= best.interval[1] and best.tied_with_best
    for r in ranked:  # (a bootstrap with repeated rows put LogME's "interval" far above the score)
        assert r.logme_interval[0] <= r.logme <= r.logme_interval[1]
        assert r.logme_interval[1] - r.logme_interval[0] < 0.5
    assert best.knn > other.knn and best.logme > other.logme
    assert (
        best.images == trained_on < len(report.images)
        and best.parameters > 0
        and best.feature_dim == 64
        and best.seconds > 0
    )
    assert set(best.to_dict()) >= {"backbone", "score", "interval", "knn", "logme", "tied_with_best"}


def test_cli_rank_json_text_and_bad_input(candidates, capsys):
    import json

    from tlstudio.cli import main

    data, related, untrained = candidates
    assert main(["rank", str(data), "--backbones", f"{untrained},{related}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["backbone"] for r in out["ranking"]] == [str(related), str(untrained)]
    assert out["ranking"][0]["interval"][0] <= out["ranking"][0]["score"] and out["images"] == 110
    assert out["indistinguishable_from_best"][0] == str(related)
    assert main(["rank", str(data), "--backbones", f"{related}"]) == 0
    assert "letters.keras" in capsys.readouterr().out
    assert main(["rank", str(data), "--backbones", f"{related},{related}"]) == 2
    assert main(["rank", str(data / "nope"), "--backbones", "x"]) == 2
    assert main(["rank", str(data), "--backbones", "NoSuchNet"]) == 2
    assert "NoSuchNet" in capsys.readouterr().err


def test_knn_never_counts_an_image_as_its_own_neighbour_even_among_identical_copies():
    features = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = np.array([0, 1, 0, 1])  # each image's only equal twin carries the other label
    assert not knn_correct(features, labels, k=1).any()


def test_logme_survives_features_that_say_nothing():
    labels = np.repeat(np.arange(3), 10)
    assert np.isfinite(logme(np.zeros((30, 8)), labels))


def test_rank_says_why_a_class_with_too_few_training_images_cannot_be_ranked(candidates, tmp_path):
    import shutil

    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.training.ranking import rank_backbones

    data, related, _ = candidates
    small = tmp_path / "data"
    shutil.copytree(data, small)
    for extra in sorted((small / "c_0").glob("*.png"))[3:]:
        extra.unlink()  # three images: one each for train, validation and test
    with pytest.raises(ValueError, match="ranking needs at least 2 per class"):
        rank_backbones(inspect_folder(small), [str(related)])
