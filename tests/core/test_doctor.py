"""The dataset doctor on folders the tests build: every verdict checked."""

from __future__ import annotations

import os

import pytest
from factory import animated_gif, encode, make_class_folder, pattern, png_bomb, write, write_image

from tlstudio.core.data.health import balanced_class_weights, inspect_folder
from tlstudio.core.data.scan import scan_folder


@pytest.fixture
def hostile(tmp_path):
    """A folder with good images in every format and one of each kind of bad entry."""
    root = tmp_path / "data"
    cats = root / "cats"
    write_image(cats / "a.jpg", seed=1)
    write_image(cats / "b.png", seed=2)
    write(cats / "c.gif", animated_gif())
    write_image(cats / "d.bmp", seed=4)
    write_image(cats / "e.webp", seed=5)
    write_image(cats / "f.tiff", seed=6)
    write(cats / "png_named.jpg", encode(pattern(seed=7), "PNG"))
    write_image(cats / "nested" / "deeper" / "g.jpg", seed=8)
    write(cats / "page.jpg", b"<!doctype html><html>not a cat</html>")
    write(cats / "empty.jpg", b"")
    jpeg = encode(pattern(64, 64, seed=9), "JPEG")
    write(cats / "truncated.jpg", jpeg[: len(jpeg) // 2])
    write(cats / "bomb.png", png_bomb())
    write(cats / "notes.txt", b"remember to label the dogs\n")
    write(cats / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(cats / "._a.jpg", b"\x00\x05\x16\x07AppleDouble")
    write_image(cats / ".thumbnails" / "t.jpg", seed=10)
    write(cats / "Thumbs.db", b"\xd0\xcf\x11\xe0")
    dogs = root / "dögs and wölves"
    write_image(dogs / "фото 1.jpg", seed=11)
    write_image(dogs / "名前 2.png", seed=12)
    write_image(dogs / "with space.jpeg", seed=13)
    (root / "empty_class").mkdir(parents=True)
    write(root / "only_bad" / "x.jpg", b"not really")
    write(root / "README.txt", b"my dataset")
    write_image(root / ".hidden_class" / "h.jpg", seed=14)
    write_image(root / "__MACOSX" / "cats" / "._a.jpg", seed=15)
    os.symlink(root / "nowhere.jpg", cats / "broken_link.jpg")
    return root


def test_hostile_folder_verdicts(hostile):
    report = inspect_folder(hostile)
    assert report.classes == {"cats": 8, "dögs and wölves": 3}
    assert report.usable
    reasons = {s.path: s.reason for s in report.skipped}
    expected = {
        "cats/page.jpg": "HTML page",
        "cats/empty.jpg": "empty file",
        "cats/truncated.jpg": "truncated",
        "cats/bomb.png": "decompression bomb",
        "cats/notes.txt": "text file",
        "cats/.DS_Store": "hidden file",
        "cats/._a.jpg": "hidden file",
        "cats/.thumbnails": "hidden folder",
        "cats/Thumbs.db": "system file",
        "cats/broken_link.jpg": "broken link",
        "only_bad/x.jpg": "not an image",
        "README.txt": "not inside a class folder",
        ".hidden_class": "hidden folder",
        "__MACOSX": "system folder",
    }
    for path, words in expected.items():
        assert words in reasons.get(path, ""), (path, reasons.get(path))
    assert set(reasons) == set(expected)
    assert report.empty_classes == ["empty_class", "only_bad"]
    assert any("'empty_class' has no usable images" in w for w in report.warnings)
    formats = {r.path: r.format for r in report.images}
    assert formats["cats/png_named.jpg"] == "PNG"
    assert formats["cats/c.gif"] == "GIF"
    assert "cats/nested/deeper/g.jpg" in formats
    assert report.formats == {"BMP": 1, "GIF": 1, "JPEG": 4, "PNG": 3, "TIFF": 1, "WEBP": 1}


def test_deep_scan_agrees_with_quick_scan(hostile):
    quick = inspect_folder(hostile)
    deep = inspect_folder(hostile, deep=True)
    assert deep.classes == quick.classes
    assert [s.path for s in deep.skipped] == [s.path for s in quick.skipped]


def test_scan_is_independent_of_worker_count(hostile):
    one = scan_folder(hostile, workers=1)
    many = scan_folder(hostile, workers=8)
    assert one == many


def test_progress_reaches_total(tmp_path):
    make_class_folder(tmp_path, "a", 300)
    make_class_folder(tmp_path, "b", 3, seed=1)
    seen = []
    scan_folder(tmp_path, on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (303, 303)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_undecodable_file_name_is_reported_not_fatal(tmp_path):
    make_class_folder(tmp_path, "a", 2)
    make_class_folder(tmp_path, "b", 2, seed=1)
    bad = os.path.join(os.fsencode(tmp_path / "a"), b"caf\xe9.png")
    with open(bad, "wb") as fh:
        fh.write(encode(pattern(seed=99), "PNG"))
    report = inspect_folder(tmp_path)
    assert report.classes == {"a": 3, "b": 2}


def test_duplicates_within_and_across_classes(tmp_path):
    same = encode(pattern(seed=1), "PNG")
    write(tmp_path / "a" / "one.png", same)
    write(tmp_path / "a" / "copy of one.png", same)
    write(tmp_path / "b" / "one again.png", same)
    other = encode(pattern(seed=2), "PNG")
    write(tmp_path / "a" / "two.png", other)
    write(tmp_path / "a" / "two copy.png", other)
    make_class_folder(tmp_path, "b", 2, seed=3)
    report = inspect_folder(tmp_path)
    groups = {tuple(g.paths): g.cross_class for g in report.duplicates}
    assert groups == {
        ("a/copy of one.png", "a/one.png", "b/one again.png"): True,
        ("a/two copy.png", "a/two.png"): False,
    }
    assert any("label conflict" in w for w in report.warnings)
    assert any("1 duplicate file(s) within a class" in w for w in report.warnings)


def test_imbalance_warning_and_class_weights(tmp_path):
    make_class_folder(tmp_path, "many", 30)
    make_class_folder(tmp_path, "few", 5, seed=1)
    report = inspect_folder(tmp_path)
    assert report.imbalance_ratio == 6.0
    assert any("imbalanced 6.0:1" in w for w in report.warnings)
    assert report.class_weights == {"few": 3.5, "many": round(35 / 60, 4)}
    balanced = inspect_folder(tmp_path, workers=2)
    assert balanced.class_weights == report.class_weights


def test_no_imbalance_warning_at_five_to_one(tmp_path):
    make_class_folder(tmp_path, "many", 25)
    make_class_folder(tmp_path, "few", 5, seed=1)
    assert not any("imbalanced" in w for w in inspect_folder(tmp_path).warnings)


def test_balanced_class_weights_equalise_total_weight():
    weights = balanced_class_weights({"a": 10, "b": 30, "c": 60})
    assert weights["a"] * 10 == pytest.approx(weights["b"] * 30, rel=1e-3)
    assert sum(weights[k] * n for k, n in {"a": 10, "b": 30, "c": 60}.items()) == pytest.approx(100, rel=1e-3)


def test_tiny_images_and_size_stats(tmp_path):
    make_class_folder(tmp_path, "a", 3, size=(16, 12))
    make_class_folder(tmp_path, "b", 3, seed=1, size=(300, 200))
    report = inspect_folder(tmp_path)
    assert sorted(report.tiny_images) == ["a/img_000.png", "a/img_001.png", "a/img_002.png"]
    assert report.size_stats["width"] == {"min": 16, "median": 158.0, "max": 300}
    assert report.size_stats["short_side_histogram"] == {"<32": 3, "128-255": 3}
    assert any("3 image(s) are smaller than 32 px" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("layout", "problem"),
    [({}, "no class folders"), ({"only": 3}, "found 1 class folder"), ({"a": 3, "b": 0}, "found 1 class")],
)
def test_unusable_folders(tmp_path, layout, problem):
    for label, n in layout.items():
        (tmp_path / label).mkdir()
        make_class_folder(tmp_path, label, n)
    report = inspect_folder(tmp_path)
    assert not report.usable
    assert problem in report.problem


def test_missing_folder_raises(tmp_path):
    with pytest.raises(NotADirectoryError):
        scan_folder(tmp_path / "nope")


def test_to_dict_has_the_documented_keys(hostile):
    data = inspect_folder(hostile).to_dict()
    assert {"classes", "skipped", "warnings", "duplicates"} <= set(data)
    assert all(set(item) == {"path", "reason"} for item in data["skipped"])


def test_a_scan_reports_progress_and_can_be_cancelled(tmp_path):
    import threading

    from factory import make_colour_dataset

    from tlstudio.core.data.scan import ScanCancelled, scan_folder

    root = make_colour_dataset(tmp_path / "data", per_class=100, size=8)  # more than one batch of 256
    seen = []
    scan_folder(root, workers=1, on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (300, 300) and len(seen) == 2
    stop = threading.Event()

    def cancel_after_first(done, total):
        stop.set()

    with pytest.raises(ScanCancelled, match="cancelled after"):
        scan_folder(root, workers=1, on_progress=cancel_after_first, stop=stop)
