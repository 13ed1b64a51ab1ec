"""Label issues of multi-label data: out-of-fold one-vs-rest probabilities, cleanlab's multi-label filter
finding labels dropped and added on purpose, the fix written back to the labels CSV (and undone)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from factory import make_multilabel_csv

from tlstudio.cli import main
from tlstudio.core.data import relabel_csv
from tlstudio.core.data.labels_csv import read_labels_csv
from tlstudio.core.data.relabel import RelabelError
from tlstudio.core.data.split import Manifest, ManifestEntry
from tlstudio.core.training.label_issues_multilabel import out_of_sample_multilabel, rank_multilabel_issues

LABELS = ["a", "b", "c", "d"]
PLANTED = [(3, 0), (10, 1), (25, 2), (40, 3), (55, 0), (70, 1), (85, 2), (100, 3)]  # (image, label) flipped


def planted_set(seed: int):
    """Features that carry each image's true labels, and those labels with ``PLANTED`` flipped."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((120, 4)) < 0.35).astype(np.float64)
    features = truth @ (rng.normal(0, 2, (4, 12))) + rng.normal(0, 1, (120, 12))
    given = truth.copy()
    for i, k in PLANTED:
        given[i, k] = 1 - given[i, k]
    return features, given


@pytest.mark.parametrize("seed", [0, 1])
def test_flipped_and_dropped_labels_are_found_with_the_label_and_its_side(seed):
    features, given = planted_set(seed)
    probs = out_of_sample_multilabel(features, given)
    assert probs.shape == (120, 4) and not np.allclose(probs.sum(1), 1)  # independent per label
    issues = rank_multilabel_issues(given, probs, [f"i{i}" for i in range(120)], LABELS)
    said = {(int(x.path[1:]), LABELS.index(label)) for x in issues for label in (*x.missing, *x.wrong)}
    recall = sum(p in said for p in PLANTED) / len(PLANTED)
    chance = len(said) / given.size  # what listing as many (image, label) pairs at random would find
    assert recall >= 0.75 and recall > 5 * chance, (recall, chance)
    first = {int(x.path[1:]) for x in issues[: len(PLANTED)]}
    assert len(first & {i for i, _ in PLANTED}) >= 6  # ranked by cleanlab's quality: the planted first
    for x in issues:
        i = int(x.path[1:])
        for label in x.missing:  # a missing label is absent, a wrong one present
            assert given[i, LABELS.index(label)] == 0 and label in x.suggested
        for label in x.wrong:
            assert given[i, LABELS.index(label)] == 1 and label not in x.suggested
        assert set(x.probabilities) == set(x.missing) | set(x.wrong)
    assert any(x.confident for x in issues) and issues == sorted(issues, key=lambda x: (x.quality, x.path))
    data = issues[0].to_dict()
    assert isinstance(data["given"], list) and 0 <= data["quality"] <= 1


def test_cleanlab_runs_without_a_pool_and_a_rare_label_cannot_be_judged(monkeypatch):
    import cleanlab.multilabel_classification.filter as ml_filter

    asked = {}
    real = ml_filter.find_multilabel_issues_per_class

    def recording(labels, probs, **kwargs):
        asked.update(kwargs)
        return real(labels, probs, **kwargs)

    monkeypatch.setattr(ml_filter, "find_multilabel_issues_per_class", recording)
    features, given = planted_set(0)
    probs = out_of_sample_multilabel(features, given)
    rank_multilabel_issues(given, probs, [str(i) for i in range(120)], LABELS)
    assert asked.get("n_jobs") == 1
    given[:, 3] = 0
    given[0, 3] = 1
    with pytest.raises(ValueError, match="at least 2 images"):
        out_of_sample_multilabel(features, given)


def test_a_fix_rewrites_the_csv_atomically_the_split_follows_and_undo_restores(tmp_path, monkeypatch):
    csv = make_multilabel_csv(tmp_path / "data", n=12)
    before = read_labels_csv(csv)
    path, old = before.rows[5]
    manifest = Manifest(
        tuple(ManifestEntry(p, "0" * 64, ";".join(s), "train") for p, s in before.rows), multi_label=True
    )
    change, updated = relabel_csv.set_labels(
        csv, path, ["yellow", "blue"], expected=old, manifest=manifest, manifest_path=tmp_path / "m.csv"
    )
    after = read_labels_csv(csv)
    assert dict(after.rows)[path] == ("blue", "yellow") and change.old == old
    assert [r for r in after.rows if r[0] != path] == [r for r in before.rows if r[0] != path]
    saved = Manifest.load(tmp_path / "m.csv")
    assert saved.multi_label and next(e for e in saved.entries if e.path == path).labels == ("blue", "yellow")
    assert updated == saved
    assert [p.name for p in csv.parent.iterdir() if p.name.startswith(".tmp")] == []
    with pytest.raises(RelabelError, match="check the labels again"):  # the CSV changed meanwhile
        relabel_csv.set_labels(csv, path, ["red"], expected=old)
    with pytest.raises(RelabelError, match="separator"):
        relabel_csv.set_labels(csv, path, ["red;green"])
    with pytest.raises(RelabelError, match="not listed"):
        relabel_csv.set_labels(csv, "images/nope.png", ["red"])

    def killed(*_):
        raise OSError("killed mid-write")

    monkeypatch.setattr(os, "replace", killed)  # the rename never happens: the old file stays whole
    with pytest.raises(OSError):
        relabel_csv.set_labels(csv, path, ["red"])
    monkeypatch.undo()
    assert read_labels_csv(csv).rows == after.rows
    assert [p.name for p in csv.parent.iterdir() if p.name.startswith(".tmp")] == []
    relabel_csv.undo_change(csv, change, manifest=updated, manifest_path=tmp_path / "m.csv")
    assert read_labels_csv(csv).rows == before.rows
    assert next(e for e in Manifest.load(tmp_path / "m.csv").entries if e.path == path).labels == old


def test_an_image_added_with_labels_gets_a_row_and_its_copy_and_undo_takes_both_back(tmp_path):
    csv = make_multilabel_csv(tmp_path / "data", n=12)
    before = read_labels_csv(csv).rows
    outside = tmp_path / "unlabelled" / "new.png"
    outside.parent.mkdir()
    outside.write_bytes((csv.parent / before[0][0]).read_bytes())
    change = relabel_csv.add_image(csv, outside, ["red", "green"])
    assert change.path == "added/new.png" and (csv.parent / change.path).read_bytes() == outside.read_bytes()
    assert read_labels_csv(csv).rows == (*before, ("added/new.png", ("green", "red")))
    again = relabel_csv.add_image(csv, outside, [])  # a second copy, a free name, no label
    assert again.path == "added/new-1.png" and read_labels_csv(csv).rows[-1] == ("added/new-1.png", ())
    inside = csv.parent / "images" / "extra.png"
    inside.write_bytes(outside.read_bytes())
    here = relabel_csv.add_image(csv, inside, ["blue"])
    assert (here.path, here.copied_from) == ("images/extra.png", None)
    with pytest.raises(RelabelError, match="already listed"):
        relabel_csv.add_image(csv, inside, ["blue"])
    for done in (here, again, change):
        relabel_csv.undo_change(csv, done)
    assert read_labels_csv(csv).rows == before
    assert not (csv.parent / "added" / "new.png").exists() and inside.is_file() and outside.is_file()


def test_cli_bad_input_exits_2_before_any_work(tmp_path, capsys):
    csv = make_multilabel_csv(tmp_path / "data", n=12)
    assert main(["inspect", str(csv), "--label-issues"]) == 2
    assert "--label-issues needs --backbone" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("path,labels\nimages/000.png,a;;b\n")
    assert main(["inspect", str(bad), "--label-issues", "--backbone", "x.keras"]) == 2
    assert "an empty label" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    Manifest((ManifestEntry("images/000.png", "0" * 64, "red;blue", "train"),), multi_label=True).save(
        run / "manifest.csv"
    )
    # a multi-label run's pseudo-labels go into its labels CSV: a folder is refused, before any work
    assert main(["suggest", str(run), str(csv.parent), "--pseudo-label", str(csv.parent)]) == 2
    assert "give the run's labels CSV" in capsys.readouterr().err
