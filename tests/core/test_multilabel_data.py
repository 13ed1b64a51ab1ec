"""Multi-label data: the labels CSV's checks, iterative stratification, the manifest, `inspect` on a CSV."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factory import make_class_folder, make_multilabel_csv, write_image

from tlstudio.cli import main
from tlstudio.core.data.iterative_split import iterative_stratification
from tlstudio.core.data.labels_csv import LabelsCsvError, read_labels_csv
from tlstudio.core.data.source import inspect_data
from tlstudio.core.data.split import Manifest, SplitConfig, make_split


def _csv(tmp_path, text: str, images=("a.png", "b.png", "c.png", "d.png")):
    for i, name in enumerate(images):
        write_image(tmp_path / name, seed=i)
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = "path,labels\na.png,x;y\nb.png,x\nc.png,y\nd.png,\n"


def test_a_multilabel_csv_is_read_with_its_task_from_the_data(tmp_path):
    table = read_labels_csv(_csv(tmp_path, GOOD))
    assert table.task == "multi_label"
    assert table.labels == ["x", "y"]
    assert table.counts() == {"x": 2, "y": 2}
    assert dict(table.rows)["d.png"] == ()


def test_a_csv_with_one_label_per_row_is_an_ordinary_single_label_task(tmp_path):
    path = _csv(tmp_path, "path,labels\na.png,x\nb.png,x\nc.png,y\nd.png,y\n")
    report = inspect_data(path)
    assert report.task == "single_label" and report.classes == {"x": 2, "y": 2}
    manifest = make_split(report.images, SplitConfig(0.25, 0.25))
    assert not manifest.multi_label and manifest.classes == ["x", "y"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("file,label\na.png,x\n", "header path,labels"),
        ("", "header path,labels"),
        ("path,labels\na.png,x\nmissing.png,y\nb.png,y\nc.png,x\n", "missing.png not there"),
        ("path,labels\n../a.png,x\nb.png,y\n", "leads outside"),
        ("path,labels\n/etc/passwd,x\nb.png,y\n", "absolute path"),
        ("path,labels\na.png,x\na.png,y\nb.png,x;y\n", "listed twice"),
        ("path,labels\na.png,x;;y\nb.png,x;y\n", "an empty label"),
        ("path,labels\na.png,x;y\nb.png,x\nc.png,z\n", "'y', 'z' have fewer than 2"),
        ("path,labels\na.png,x\nb.png,x\n", "at least two are needed"),
        ("path,labels\na.png,x,y\n", "expected 2 fields"),
    ],
)
def test_bad_csvs_exit_2_with_one_line(tmp_path, capsys, text, says):
    path = _csv(tmp_path, text)
    with pytest.raises(LabelsCsvError, match=says.replace("(", r"\(")):
        read_labels_csv(path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_an_unreadable_image_exits_2(tmp_path, capsys):
    path = _csv(tmp_path, GOOD)
    (tmp_path / "c.png").write_bytes(b"<html>not an image</html>")
    assert main(["inspect", str(path)]) == 2
    assert "c.png" in capsys.readouterr().err


def test_inspect_shows_labels_cooccurrence_and_images_with_none(tmp_path, capsys):
    path = make_multilabel_csv(tmp_path / "d", n=24)
    manifest_path = tmp_path / "m.csv"
    assert main(["inspect", str(path), "--json", "--manifest", str(manifest_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    table = read_labels_csv(path)
    assert data["task"] == "multi_label"
    assert data["classes"] == table.counts()
    assert data["unlabelled"] == sorted(r for r, labels in table.rows if not labels)
    pairs = sum(1 for _, labels in table.rows if {"blue", "red"} <= set(labels))
    assert data["cooccurrence"]["blue"]["red"] == pairs == data["cooccurrence"]["red"]["blue"]
    manifest = Manifest.load(manifest_path)
    assert manifest.multi_label and manifest.classes == table.labels
    assert {e.path: e.labels for e in manifest.entries} == dict(table.rows)  # the manifest records them
    n = len(table.rows)  # each label's suggested positive weight: images without it / with it
    assert data["class_weights"] == {k: round((n - c) / c, 4) for k, c in table.counts().items()}
    assert main(["inspect", str(path)]) == 0
    assert "Multi-label:" in capsys.readouterr().out


def test_iterative_split_puts_every_label_in_every_split_and_keeps_copies_together(tmp_path):
    rng = np.random.default_rng(3)
    rows = ["path,labels"]
    names = [f"l{i}" for i in range(6)]
    for i in range(60):
        labels = [n for j, n in enumerate(names) if rng.random() < (0.5 if j < 3 else 0.12)]
        if i < 18:
            labels = [names[3 + i % 3]]  # the rare labels: at least 3 images each
        write_image(tmp_path / f"{i:02d}.png", seed=i)
        rows.append(f"{i:02d}.png,{';'.join(labels)}")
    (tmp_path / "copy.png").write_bytes((tmp_path / "00.png").read_bytes())  # a copy of 00.png
    rows.append("copy.png,l3")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    report = inspect_data(tmp_path / "labels.csv")
    config = SplitConfig(0.2, 0.2, seed=5)
    manifest = make_split(report.images, config, multi_label=True)
    assert manifest.multi_label
    for split in ("train", "val", "test"):
        assert manifest.missing_classes(split) == []
    where = {e.path: e.split for e in manifest.entries}
    assert where["copy.png"] == where["00.png"]
    sizes = {s: len(manifest.subset(s)) for s in ("train", "val", "test")}
    assert sizes["val"] in range(9, 16) and sizes["test"] in range(9, 16)
    assert make_split(report.images, config, multi_label=True) == manifest  # seeded: the same again
    saved = tmp_path / "manifest.csv"
    manifest.save(saved)
    assert Manifest.load(saved) == manifest


def test_iterative_stratification_spreads_labels_by_their_share():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 5)) < [0.5, 0.3, 0.2, 0.1, 0.05]).astype(int)
    sizes = np.ones(300, int)
    per_label = y.sum(0)
    targets = np.stack([per_label * 0.6, per_label * 0.2, per_label * 0.2]).round().astype(int)
    split_of = iterative_stratification(y, sizes, targets, np.array([180, 60, 60]), seed=1)
    got = np.stack([y[split_of == s].sum(0) for s in range(3)])
    assert np.abs(got - targets).max() <= 2  # a random split is off by several images per label
    assert np.bincount(split_of).tolist() == pytest.approx([180, 60, 60], abs=6)


def test_folder_data_still_gives_a_single_label_report(tmp_path):
    make_class_folder(tmp_path, "ants", 4)
    make_class_folder(tmp_path, "bees", 4, seed=1)
    report = inspect_data(tmp_path)
    assert report.task == "single_label" and "task" in report.to_dict()


def test_rank_takes_a_single_label_or_a_multilabel_csv(tmp_path, capsys):
    path = _csv(tmp_path, GOOD)
    assert main(["rank", str(path), "--backbones", "x"]) == 2  # the data is fine: the backbone is not
    err = capsys.readouterr().err
    assert "unknown backbone 'x'" in err and "single-label data only" not in err
    single = _csv(tmp_path / "s", "path,labels\na.png,x\nb.png,x\nc.png,y\nd.png,y\n")
    report = inspect_data(single)
    assert report.root == str(tmp_path / "s") and report.source == str(single)
    assert main(["rank", str(tmp_path / "nope.csv"), "--backbones", "x"]) == 2
    assert "nope.csv is not there" in capsys.readouterr().err


def test_train_refuses_a_bad_csv_before_any_work(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("file,tags\n")
    assert main(["train", str(tmp_path / "labels.csv"), "--backbone", "x", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "header path,labels" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_label_issues_on_multilabel_data_say_why_a_backbone_cannot_be_used(tmp_path, capsys):
    path = _csv(tmp_path, GOOD)  # multi-label data is checked (tests/core/test_multilabel_label_issues.py)
    assert main(["inspect", str(path), "--label-issues", "--backbone", "no_such_backbone"]) == 2
    reason = capsys.readouterr().err.strip().splitlines()[-1]  # (after the progress line)
    assert reason.startswith("tlstudio inspect: unknown backbone 'no_such_backbone'")
