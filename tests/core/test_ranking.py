"""Ranking backbones on the user's data: LogME, k-NN and the probe, with intervals and ties."""

from __future__ import annotations

from pathlib import Path

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


def unloadable_model(good: Path, to: Path) -> Path:
    """A .keras file whose zip and config read fine but name a layer Keras does not know: it passes
    every check made before the work and fails when the candidate is built (mid-ranking)."""
    import zipfile

    with zipfile.ZipFile(good) as source, zipfile.ZipFile(to, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                data = data.replace(b'"class_name": "Conv2D"', b'"class_name": "NoSuchLayer"', 1)
                assert b"NoSuchLayer" in data
            out.writestr(item, data)
    return to


@pytest.fixture
def offline_weights(tmp_path, monkeypatch):
    """Keras Applications' ImageNet weights are not cached and their server does not answer."""
    from tlstudio.core.backbone import weights as keras_weights

    gone = keras_weights.WeightsFile("http://127.0.0.1:9/w.h5", "w.h5", None, tmp_path / "keras" / "models")
    monkeypatch.setattr(keras_weights, "imagenet_weights_file", lambda name, size=None: gone)
    return gone


@pytest.fixture
def no_work(monkeypatch):
    """Records every candidate whose features would be computed (none should be)."""
    from tlstudio.core.training import ranking

    built: list[str] = []

    def record(report, name, **kwargs):
        built.append(name)
        raise AssertionError(f"{name} was built before every candidate was checked")

    monkeypatch.setattr(ranking, "image_features", record)
    return built


def test_every_bad_candidate_is_found_before_any_candidate_is_built(
    colour_data, tiny_backbone_file, tmp_path, offline_weights, no_work
):
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.training.rank_check import CandidateProblems, candidate_problems
    from tlstudio.core.training.ranking import rank_backbones

    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(tiny_backbone_file.read_bytes()[:300])
    weights_only = tmp_path / "weights_only.h5"
    import h5py

    with h5py.File(weights_only, "w") as f:
        f["w"] = [1.0]
    broken = tmp_path / "broken.keras"  # config.json that is not JSON
    import zipfile

    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("config.json", "{not json")
    good = str(tiny_backbone_file)
    candidates = [
        good,
        "NoSuchNet",
        str(tmp_path / "missing.keras"),
        str(truncated),
        str(weights_only),
        str(broken),
        "MobileNetV3Small",  # weights not cached, offline
    ]
    problems = dict(candidate_problems(candidates))
    assert list(problems) == candidates[1:]  # the good one passes; each bad one has its reason
    assert "unknown backbone 'NoSuchNet'" in problems["NoSuchNet"]
    assert "no such file" in problems[str(tmp_path / "missing.keras")]
    assert "not a readable .keras" in problems[str(truncated)]
    assert "weights only" in problems[str(weights_only)]
    assert "not a readable .keras model" in problems[str(broken)]
    assert "ImageNet weights for MobileNetV3Small are not in" in problems["MobileNetV3Small"]
    assert "tlstudio weights MobileNetV3Small" in problems["MobileNetV3Small"]
    # an image size a candidate cannot take: the file's input is fixed at 32, MobileNet's minimum is 32
    sized = dict(candidate_problems([good, "MobileNetV3Small"], weights="none", image_size=24))
    assert "32×32 images only" in sized[good] and "at least 32×32" in sized["MobileNetV3Small"]
    assert candidate_problems([good, "MobileNetV3Small"], weights="none") == []

    report = inspect_folder(colour_data)
    with pytest.raises(CandidateProblems) as raised:
        rank_backbones(report, [good, "NoSuchNet", "MobileNetV3Small"])
    assert [c for c, _ in raised.value.problems] == ["NoSuchNet", "MobileNetV3Small"]
    assert no_work == []  # the good first candidate was never built


def test_a_candidate_failing_during_its_work_keeps_the_rows_of_the_others(
    colour_data, tiny_backbone_file, tmp_path
):
    import keras

    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.training.rank_check import candidate_problems
    from tlstudio.core.training.ranking import rank_backbones

    bad = unloadable_model(tiny_backbone_file, tmp_path / "unknown_layer.keras")
    untrained = tmp_path / "untrained.keras"
    keras.models.clone_model(keras.models.load_model(tiny_backbone_file)).save(untrained)
    names = [str(tiny_backbone_file), str(bad), str(untrained)]
    assert candidate_problems(names) == []  # it looks fine until Keras builds it
    said: list[str] = []
    ranked = rank_backbones(inspect_folder(colour_data), names, progress=said.append)
    assert len(ranked) == 3
    *done, failed = ranked
    assert {r.backbone for r in done} == {str(tiny_backbone_file), str(untrained)}
    assert all(r.error is None and 0 <= r.score <= 1 and r.parameters > 0 for r in done)
    assert done[0].tied_with_best
    assert failed.backbone == str(bad) and "could not load" in failed.error and "NoSuchLayer" in failed.error
    assert np.isnan(failed.score) and not failed.tied_with_best
    assert failed.to_dict() == {
        "backbone": str(bad),
        "error": failed.error,
        "images": failed.images,
        "seconds": failed.seconds,
    }
    assert any("failed" in s and "going on" in s for s in said)
    assert any(str(untrained) in s for s in said[said.index(next(s for s in said if "failed" in s)) :])


def test_cli_rank_refuses_bad_candidates_at_once_one_line_each(
    colour_data, tiny_backbone_file, tmp_path, offline_weights, no_work, capsys
):
    import time

    from tlstudio.cli import main

    missing = tmp_path / "missing.keras"
    started = time.perf_counter()
    code = main(
        [
            "rank",
            str(colour_data),
            "--backbones",
            f"{tiny_backbone_file},NoSuchNet,{missing},MobileNetV3Small",
        ]
    )
    assert code == 2 and no_work == []
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("tlstudio rank:")]
    assert len(lines) == 3, err
    assert "NoSuchNet" in lines[0] and str(missing) in lines[1] and "MobileNetV3Small" in lines[2]
    assert time.perf_counter() - started < 60


def test_cli_rank_shows_the_finished_rows_and_the_failed_one_with_its_reason(
    colour_data, tiny_backbone_file, tmp_path, capsys
):
    import json

    from tlstudio.cli import main

    bad = unloadable_model(tiny_backbone_file, tmp_path / "unknown_layer.keras")
    assert main(["rank", str(colour_data), "--backbones", f"{bad},{tiny_backbone_file}"]) == 1
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    good_row = next(line for line in rows if "pretrained.keras" in line)
    bad_row = next(line for line in rows if "unknown_layer.keras" in line)
    assert rows.index(good_row) < rows.index(bad_row)  # ranked first, the failed one after
    assert bad_row.startswith("✗") and "failed: could not load" in bad_row
    assert "1 of 2 candidates failed" in captured.err
    assert main(["rank", str(colour_data), "--backbones", f"{bad},{tiny_backbone_file}", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [r["backbone"] for r in out["ranking"]] == [str(tiny_backbone_file)]
    assert [r["backbone"] for r in out["failed"]] == [str(bad)] and "NoSuchLayer" in out["failed"][0]["error"]
