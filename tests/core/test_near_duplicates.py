"""Near-duplicates (perceptual hash + thumbnail correlation) in the doctor and the split, and the
quality list (dark, bright, blank, blurred, tiny)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from factory import photo
from PIL import Image, ImageEnhance, ImageFilter

from tlstudio.core.data import looks
from tlstudio.core.data.health import inspect_folder
from tlstudio.core.data.scan import scan_folder
from tlstudio.core.data.split import SplitConfig, make_split


def variants(img: Image.Image) -> dict[str, Image.Image]:
    """What copying a picture around the web does to it."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=40)
    return {
        "jpeg": Image.open(io.BytesIO(buf.getvalue())).convert("RGB"),
        "smaller": img.resize((img.width * 2 // 3, img.height * 2 // 3)),
        "larger": img.resize((img.width * 2, img.height * 2)),
        "mirrored": img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "contrast": ImageEnhance.Contrast(img).enhance(0.8),
        "brighter": ImageEnhance.Brightness(img).enhance(1.1),
        "softened": img.filter(ImageFilter.GaussianBlur(0.8)),
    }


def save(img: Image.Image, path: Path, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)
    return path


def test_edited_copies_are_near_duplicates_and_different_pictures_are_not(tmp_path):
    originals = [photo(seed) for seed in range(12)]
    base = [looks.look_at(save(img, tmp_path / f"o{i}.png")) for i, img in enumerate(originals)]
    for name, copy in variants(originals[0]).items():
        copied = looks.look_at(save(copy, tmp_path / f"{name}.png"))
        assert looks.near_duplicate_pairs([base[0], copied]) == [(0, 1)], name
    assert looks.near_duplicate_pairs(base) == []


def test_near_duplicates_never_straddle_splits(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    families = {}
    for seed in range(60):
        label = f"c{seed % 3}"
        original = photo(seed, side=96)
        save(original, root / label / f"p{seed}.png")
        paths = [f"{label}/p{seed}.png"]
        for name, copy in list(variants(original).items())[: 1 + seed % 3]:
            other = label if rng.random() < 0.8 else f"c{(seed + 1) % 3}"
            save(copy, root / other / f"p{seed}_{name}.jpg", "JPEG")
            paths.append(f"{other}/p{seed}_{name}.jpg")
        families[seed] = paths
    report = inspect_folder(root)
    manifest_by_seed = {
        seed: make_split(report.images, SplitConfig(0.2, 0.2, seed=seed)) for seed in (0, 1, 2)
    }
    for manifest in manifest_by_seed.values():
        split_of = {e.path: e.split for e in manifest.entries}
        assert set(split_of.values()) == {"train", "val", "test"}
        for paths in families.values():
            assert len({split_of[p] for p in paths}) == 1, paths
    grouped = {frozenset(g.paths) for g in report.near_duplicates}
    assert grouped == {frozenset(paths) for paths in families.values()}


def test_the_doctor_reports_look_alikes_across_classes_as_label_conflicts(tmp_path):
    root = tmp_path / "data"
    for seed in range(8):
        save(photo(seed), root / ("cats" if seed < 4 else "dogs") / f"{seed}.png")
    save(photo(2).resize((100, 100)), root / "dogs" / "copy_of_2.png")
    report = inspect_folder(root)
    assert [(g.paths, g.cross_class) for g in report.near_duplicates] == [
        (["cats/2.png", "dogs/copy_of_2.png"], True)
    ]
    assert any("carry different labels" in w and "cats/2.png" in w for w in report.warnings)
    assert report.duplicates == []  # not byte-identical
    data = report.to_dict()
    assert data["near_duplicates"][0]["cross_class"] is True


def test_quality_list_names_dark_bright_blank_blurred_and_tiny_images(tmp_path):
    root = tmp_path / "data"
    for seed in range(6):
        save(photo(seed), root / "a" / f"ok{seed}.png")
        save(photo(seed + 10), root / "b" / f"ok{seed}.png")
    dark = np.asarray(photo(20), dtype=np.float32) * 0.08
    save(Image.fromarray(dark.astype(np.uint8)), root / "a" / "dark.png")
    bright = 240 + np.asarray(photo(21), dtype=np.float32) * 0.06
    save(Image.fromarray(bright.astype(np.uint8)), root / "a" / "bright.png")
    save(Image.new("RGB", (120, 90), (90, 120, 200)), root / "b" / "blank.png")
    save(photo(22).filter(ImageFilter.GaussianBlur(6)), root / "b" / "blurred.png")
    save(photo(23).resize((20, 20)), root / "b" / "tiny.png")
    report = inspect_folder(root)
    reasons = {q.path: q.reasons for q in report.quality_issues}
    assert reasons["a/dark.png"] == ["very dark"]
    assert reasons["a/bright.png"] == ["very bright (washed out)"]
    assert reasons["b/blank.png"] == ["blank (almost one colour)"]
    assert reasons["b/blurred.png"] == ["blurred"]
    assert reasons["b/tiny.png"][0] == "tiny (20×20 px)"
    assert not any(p.split("/")[1].startswith("ok") for p in reasons)
    assert any("may be poor examples" in w for w in report.warnings)
    assert report.to_dict()["quality_issues"]


def test_scan_without_looks_is_header_only_and_groups_only_identical_files(tmp_path):
    root = tmp_path / "data"
    save(photo(1), root / "a" / "x.png")
    save(photo(1).resize((80, 80)), root / "b" / "y.png")
    scan = scan_folder(root, looks=False)
    assert all(r.look is None for r in scan.images)
    manifest = make_split(scan.images)
    assert len(manifest.entries) == 2


def test_a_folder_of_frames_that_all_look_alike_is_one_group(tmp_path):
    still = np.asarray(photo(5, side=64), dtype=np.int16)
    rng = np.random.default_rng(1)
    frames = []
    for k in range(150):
        noisy = np.clip(still + rng.integers(-6, 7, still.shape), 0, 255).astype(np.uint8)
        frames.append(looks.look_at(save(Image.fromarray(noisy), tmp_path / f"f{k}.png")))
    frames.append(looks.look_at(save(photo(99, side=64), tmp_path / "other.png")))
    labels = looks.look_alike_labels(frames)
    assert set(labels[:150]) == {0} and labels[150] == 150
    assert len(looks.near_duplicate_pairs(frames)) == 150 * 149 // 2


def test_pseudo_labelled_images_and_their_look_alikes_are_for_training_only(tmp_path):
    root = tmp_path / "data"
    for seed in range(30):
        label = f"c{seed % 2}"
        save(photo(seed, side=64), root / label / f"{seed}.png")
        save(photo(100 + seed, side=64), root / label / "pseudo-labels" / f"p{seed}.png")
    save(photo(103, side=64).resize((80, 80)), root / "c1" / "looks_like_a_pseudo_label.png")
    report = inspect_folder(root)
    assert report.pseudo_labelled == {"c0": 15, "c1": 15}
    assert any(
        "30 pseudo-labelled image(s)" in w and "never for validation or test" in w for w in report.warnings
    )
    for seed in (0, 1, 2):
        manifest = make_split(report.images, SplitConfig(0.2, 0.2, seed=seed))
        split_of = {e.path: e.split for e in manifest.entries}
        assert all(s == "train" for p, s in split_of.items() if "/pseudo-labels/" in p)
        assert split_of["c1/looks_like_a_pseudo_label.png"] == "train"
        real = manifest.counts()
        assert real["val"] == {"c0": 3, "c1": 3} and real["test"] == {"c0": 3, "c1": 3}


def test_one_colour_images_of_the_same_level_are_near_duplicates(tmp_path):
    black_png = looks.look_at(save(Image.new("RGB", (40, 30)), tmp_path / "black.png"))
    black_jpg = looks.look_at(save(Image.new("RGB", (64, 64), (1, 1, 1)), tmp_path / "black.jpg", "JPEG"))
    grey = looks.look_at(save(Image.new("RGB", (40, 30), (128, 128, 128)), tmp_path / "grey.png"))
    pattern = looks.look_at(save(photo(1), tmp_path / "photo.png"))
    assert looks.near_duplicate_pairs([black_png, black_jpg, grey, pattern]) == [(0, 1)]
