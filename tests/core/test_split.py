"""Stratified, seeded, leak-free splits and their manifest."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from factory import encode, make_class_folder, pattern, write

from tlstudio.core.data.health import inspect_folder
from tlstudio.core.data.scan import ImageRecord
from tlstudio.core.data.split import Manifest, SplitConfig, make_split


def records(counts: dict[str, int], dup_every: int = 0) -> list[ImageRecord]:
    """Synthetic records; every ``dup_every``-th image repeats the previous one's hash."""
    out = []
    for label, n in counts.items():
        for i in range(n):
            digest = f"{label}-{i - 1 if dup_every and i % dup_every == 0 and i else i}"
            out.append(ImageRecord(f"{label}/{i}.png", label, digest, "PNG", 8, 8, "RGB", 10))
    return out


def test_split_is_stratified():
    manifest = make_split(records({"a": 100, "b": 40, "c": 20}), SplitConfig(0.2, 0.1, seed=1))
    counts = manifest.counts()
    assert counts["test"] == {"a": 10, "b": 4, "c": 2}
    assert counts["val"] == {"a": 20, "b": 8, "c": 4}
    assert counts["train"] == {"a": 70, "b": 28, "c": 14}


def test_small_classes_get_one_of_each_split_when_possible():
    counts = make_split(records({"a": 3, "b": 2, "c": 10})).counts()
    assert (counts["train"]["a"], counts["val"]["a"], counts["test"]["a"]) == (1, 1, 1)
    assert counts["train"]["b"] == 2 and "b" not in counts["val"]


def test_split_is_reproducible_and_seed_dependent():
    images = records({"a": 50, "b": 50})
    assert make_split(images, SplitConfig(seed=3)) == make_split(images, SplitConfig(seed=3))
    assert make_split(images, SplitConfig(seed=3)) != make_split(images, SplitConfig(seed=4))


def test_split_does_not_depend_on_listing_order():
    images = records({"a": 50, "b": 30})
    shuffled = images[:]
    random.Random(0).shuffle(shuffled)
    assert make_split(images).fingerprint() == make_split(shuffled).fingerprint()


def test_duplicates_never_straddle_splits():
    images = records({"a": 60, "b": 60}, dup_every=3)
    manifest = make_split(images, SplitConfig(0.2, 0.2))
    split_of: dict[str, set[str]] = {}
    for e in manifest.entries:
        split_of.setdefault(e.sha256, set()).add(e.split)
    assert any(Counter(e.sha256 for e in manifest.entries)[h] > 1 for h in split_of)
    assert all(len(s) == 1 for s in split_of.values())


def test_cross_class_duplicates_stay_together(tmp_path):
    same = encode(pattern(seed=100), "PNG")
    make_class_folder(tmp_path, "a", 12)
    make_class_folder(tmp_path, "b", 12, seed=1)
    write(tmp_path / "a" / "shared.png", same)
    write(tmp_path / "b" / "shared.png", same)
    for seed in range(20):
        manifest = make_split(inspect_folder(tmp_path).images, SplitConfig(seed=seed))
        splits = {e.split for e in manifest.entries if e.path.endswith("shared.png")}
        assert len(splits) == 1


def test_manifest_round_trip_and_fingerprint(tmp_path):
    make_class_folder(tmp_path / "data", "a", 5)
    make_class_folder(tmp_path / "data", "b b", 5, seed=1)
    manifest = make_split(inspect_folder(tmp_path / "data").images)
    path = manifest.save(tmp_path / "out" / "manifest.csv")
    assert path.read_text().splitlines()[0] == "path,sha256,class,split"
    again = Manifest.load(path)
    assert again == manifest
    assert again.fingerprint() == manifest.fingerprint()
    assert again.classes == ["a", "b b"]
    assert manifest.verify(tmp_path / "data") == []


def test_manifest_verify_finds_missing_and_changed_files(tmp_path):
    files = make_class_folder(tmp_path, "a", 3) + make_class_folder(tmp_path, "b", 3, seed=1)
    manifest = make_split(inspect_folder(tmp_path).images)
    files[0].unlink()
    write(files[3], encode(pattern(seed=77), "PNG"))
    problems = manifest.verify(tmp_path)
    assert problems == ["a/img_000.png: missing", "b/img_000.png: content changed since the split was made"]


def test_bad_manifest_and_bad_fractions_are_refused(tmp_path):
    bad = write(tmp_path / "m.csv", b"file,label\nx,y\n")
    with pytest.raises(ValueError, match="not a TL Studio manifest"):
        Manifest.load(bad)
    with pytest.raises(ValueError):
        SplitConfig(0.6, 0.5)
    with pytest.raises(ValueError):
        SplitConfig(-0.1, 0.1)
