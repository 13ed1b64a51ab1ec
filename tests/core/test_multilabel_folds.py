"""K-fold cross-validation of multi-label data: folds stratified per label, scored by macro mAP."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from factory import make_multilabel_csv

from tlstudio.core.data.split import Manifest, ManifestEntry


def multilabel_manifest(n: int = 60, seed: int = 0, duplicates: int = 0) -> Manifest:
    """Images with 0–3 of four labels of very different frequencies, some byte-identical copies."""
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n):
        labels = [x for x, p in zip("abcd", (0.6, 0.3, 0.15, 0.08), strict=True) if rng.random() < p]
        if i < 4:
            labels = ["abcd"[i]]  # every label at least a few times
        entries.append(ManifestEntry(f"img/{i:03d}.png", f"h{i}", ";".join(labels), "train"))
    for i in range(duplicates):  # the same bytes as image i
        entries.append(ManifestEntry(f"img/copy{i}.png", f"h{i}", entries[i].label, "train"))
    return Manifest(tuple(entries), multi_label=True)


def test_every_image_is_tested_once_every_label_in_every_fold_and_copies_stay_together():
    from tlstudio.core.training.cross_validation_multilabel import multilabel_fold_manifests

    manifest = multilabel_manifest(duplicates=3)
    folds = multilabel_fold_manifests(manifest, 4, 0.2, seed=1)
    assert len(folds) == 4 and all(f.multi_label for f in folds)
    tested = Counter(e.path for f in folds for e in f.subset("test"))
    assert set(tested) == {e.path for e in manifest.entries} and set(tested.values()) == {1}
    per_label = Counter(x for e in manifest.entries for x in e.labels)
    for f in folds:
        test = Counter(x for e in f.subset("test") for x in e.labels)
        for label, n in per_label.items():  # stratified per label: about n/4 each, never none
            assert test[label] >= 1 and abs(test[label] - n / 4) <= 2, (label, test[label], n)
        val = Counter(x for e in f.subset("val") for x in e.labels)
        assert set(val) == set(per_label)  # every label validates too (each has ≥ 3 left)
        for sha in {e.sha256 for e in f.entries}:
            assert len({e.split for e in f.entries if e.sha256 == sha}) == 1  # never across splits
        assert f.subset("train") and f.classes == manifest.classes
    assert multilabel_fold_manifests(manifest, 4, 0.2, seed=1) == folds  # seeded


def test_folds_refuse_too_few_images_or_a_label_on_one_image():
    from tlstudio.core.training.cross_validation_multilabel import multilabel_fold_manifests

    manifest = multilabel_manifest(n=6)
    with pytest.raises(ValueError, match="fewer than 8 folds"):
        multilabel_fold_manifests(manifest, 8, 0.2, seed=0)
    with pytest.raises(ValueError, match="at least 2 folds"):
        multilabel_fold_manifests(manifest, 1, 0.2, seed=0)
    lonely = Manifest(
        (*multilabel_manifest(n=20).entries, ManifestEntry("img/x.png", "hx", "zebra", "train")),
        multi_label=True,
    )
    with pytest.raises(ValueError, match="label 'zebra' is on 1 distinct image"):
        multilabel_fold_manifests(lonely, 3, 0.2, seed=0)


def test_the_interval_brackets_the_mean_of_the_folds_macro_map(tmp_path):
    from tlstudio.core.results.multilabel_evaluation import summarize_multilabel
    from tlstudio.core.training.cross_validation_multilabel import summarise_multilabel

    rng = np.random.default_rng(0)
    folds = []
    for i in (1, 2, 3):
        targets = (rng.random((30, 3)) < 0.4).astype(float)
        probs = np.clip(targets * 0.5 + rng.random((30, 3)) * 0.6, 0, 1)
        paths = [f"{i}-{j}.png" for j in range(30)]
        evaluation = summarize_multilabel(["a", "b", "c"], [0.5] * 3, targets, probs, paths, resamples=0)
        (tmp_path / f"fold-{i}").mkdir()
        (tmp_path / f"fold-{i}" / "evaluation.json").write_text(json.dumps(evaluation.to_dict(True)))
        folds.append({"fold": i, "status": "completed", "test_images": 30,
                      "test_macro_map": evaluation.metrics["macro_map"]})  # fmt: skip
    summary = summarise_multilabel(3, folds, tmp_path, seed=0, resamples=300)
    assert summary["mean"] == pytest.approx(np.mean([f["test_macro_map"] for f in folds]))
    low, high = summary["interval"]
    assert low < summary["mean"] < high and high - low < 0.3 and summary["images"] == 90
    assert summary["sd"] == pytest.approx(np.std([f["test_macro_map"] for f in folds], ddof=1))


def test_cli_folds_refuses_fewer_than_two_folds_before_any_work(tmp_path, capsys):
    from tlstudio.cli import main

    data = make_multilabel_csv(tmp_path / "data", n=12)
    assert main(["train", str(data), "--backbone", "x", "--out", str(tmp_path / "cv"), "--folds", "1"]) == 2
    err = capsys.readouterr().err
    assert "--folds needs at least 2 folds" in err and err.count("\n") == 1
    assert not (tmp_path / "cv").exists()


@pytest.mark.slow
def test_cli_folds_on_a_labels_csv_reports_the_mean_macro_map(tmp_path, tiny_backbone_file, capsys):
    from sklearn.metrics import average_precision_score

    from tlstudio.cli import main

    data = make_multilabel_csv(tmp_path / "data", n=48)
    out = tmp_path / "cv"
    args = ["train", str(data), "--backbone", str(tiny_backbone_file), "--out", str(out), "--folds", "3"]
    code = main([*args, "--fine-tune-epochs", "0", "--batch-size", "16", "--json-summary"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Cross-validated test macro mAP over 3 folds" in printed and "95% interval" in printed
    summary = json.loads((out / "cross_validation.json").read_text())
    assert summary["task"] == "multi_label" and summary["metric"] == "macro_map"
    assert [f["fold"] for f in summary["folds"]] == [1, 2, 3] and summary["images"] == 48
    per_fold = []
    tested = []
    for i in (1, 2, 3):
        fold = out / f"fold-{i}"
        manifest = Manifest.load(fold / "manifest.csv")
        assert manifest.multi_label and not manifest.missing_classes("test")  # every label tested
        tested += [e.path for e in manifest.subset("test")]
        evaluation = json.loads((fold / "evaluation.json").read_text())
        labels = evaluation["labels"]
        truth = np.array([[x in p["true"] for x in labels] for p in evaluation["predictions"]])
        probs = np.array([[p["probabilities"][x] for x in labels] for p in evaluation["predictions"]])
        aps = [
            average_precision_score(truth[:, j], probs[:, j]) for j in range(len(labels)) if any(truth[:, j])
        ]
        per_fold.append(float(np.mean(aps)))
        assert summary["folds"][i - 1]["test_macro_map"] == pytest.approx(per_fold[-1])
        assert not (fold / "saved_model").exists()  # the folds are not exported
    assert sorted(tested) == sorted(f"images/{i:03d}.png" for i in range(48))  # each tested once
    assert summary["mean"] == pytest.approx(np.mean(per_fold)) and summary["mean"] > 0.8
    assert summary["interval"][0] <= summary["mean"] <= summary["interval"][1]
