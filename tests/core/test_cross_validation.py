"""K-fold cross-validation: folds are stratified and leak-free, and each fold is a real run."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tlstudio.core.data.split import Manifest, ManifestEntry


def manifest_of(per_class: dict[str, int], duplicates: int = 0) -> Manifest:
    entries = []
    for label, n in per_class.items():
        for i in range(n):
            entries.append(ManifestEntry(f"{label}/{i}.png", f"{label}-{i}", label, "train"))
        for i in range(duplicates):  # same bytes as image 0 of the class
            entries.append(ManifestEntry(f"{label}/copy{i}.png", f"{label}-0", label, "train"))
    return Manifest(tuple(entries))


def test_every_image_is_tested_once_classes_are_spread_and_duplicates_stay_together():
    from tlstudio.core.training.cross_validation import fold_manifests

    manifest = manifest_of({"a": 10, "b": 7, "c": 5}, duplicates=2)
    folds = fold_manifests(manifest, 5, 0.2, seed=1)
    assert len(folds) == 5
    tested = Counter(e.path for f in folds for e in f.subset("test"))
    assert set(tested) == {e.path for e in manifest.entries} and set(tested.values()) == {1}
    for f in folds:
        groups = Counter(e.label for e in {(e.label, e.sha256): e for e in f.subset("test")}.values())
        assert groups["a"] == 2 and groups["b"] in (1, 2) and groups["c"] == 1  # stratified
        for sha in {e.sha256 for e in f.entries}:
            assert len({e.split for e in f.entries if e.sha256 == sha}) == 1  # never across splits
        assert f.subset("val") and f.subset("train")
    assert fold_manifests(manifest, 5, 0.2, seed=1) == folds  # seeded
    with pytest.raises(ValueError, match="fewer than"):
        fold_manifests(manifest_of({"a": 3, "b": 9}), 4, 0.2, seed=0)


def test_look_alikes_stay_in_one_split_of_every_fold_and_pseudo_labels_only_train():
    from tlstudio.core.training.cross_validation import fold_manifests

    manifest = manifest_of({"a": 10, "b": 10})
    extra = (
        ManifestEntry("a/resized_0.png", "other-bytes", "a", "train"),  # looks like a/0.png
        ManifestEntry("b/looks_like_a_1.png", "more-bytes", "b", "train"),  # looks like a/1.png
        ManifestEntry("a/pseudo-labels/p.png", "p-bytes", "a", "train"),
        ManifestEntry("b/pseudo-labels/q.png", "q-bytes", "b", "train"),
    )
    manifest = Manifest(manifest.entries + extra)
    group_of = {"a/resized_0.png": "a-0", "b/looks_like_a_1.png": "a-1", "b/pseudo-labels/q.png": "b-3"}
    folds = fold_manifests(
        manifest, 4, 0.2, seed=2, group_of={**group_of, "a/0.png": "a-0", "a/1.png": "a-1", "b/3.png": "b-3"}
    )
    for f in folds:
        split = {e.path: e.split for e in f.entries}
        assert split["a/0.png"] == split["a/resized_0.png"]
        assert split["a/1.png"] == split["b/looks_like_a_1.png"]  # across classes too
        assert split["a/pseudo-labels/p.png"] == split["b/pseudo-labels/q.png"] == split["b/3.png"] == "train"
    tested = Counter(e.path for f in folds for e in f.subset("test"))
    assert "b/3.png" not in tested and "a/pseudo-labels/p.png" not in tested
    assert set(tested.values()) == {1}


@pytest.mark.slow
def test_cli_folds_runs_k_folds_and_reports_mean_and_interval(
    tmp_path, colour_data, tiny_backbone_file, capsys
):
    from tlstudio.cli import main

    out = tmp_path / "cv"
    args = ["train", str(colour_data), "--backbone", str(tiny_backbone_file), "--out", str(out)]
    code = main([*args, "--folds", "3", "--fine-tune-epochs", "0", "--batch-size", "8", "--json-summary"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Cross-validated test accuracy over 3 folds" in printed and "95% interval" in printed
    summary = json.loads((out / "cross_validation.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == [1, 2, 3] and summary["images"] == 36
    assert summary["mean"] >= 0.8 and summary["pooled_interval"][0] <= summary["pooled_accuracy"]
    assert all((out / f"fold-{i}" / "metrics.json").is_file() for i in (1, 2, 3))
