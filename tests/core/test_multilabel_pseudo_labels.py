"""`suggest --pseudo-label` on multi-label runs: images sure for every label, listed beside the labels CSV
with the labels the run gives them, and kept in the training split."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from factory import make_multilabel_csv, write
from test_multilabel_label_next import quadrants

from tlstudio.cli import main
from tlstudio.core.data.labels_csv import read_labels_csv
from tlstudio.core.data.split import Manifest
from tlstudio.core.settings import PSEUDO_FOLDER
from tlstudio.core.training.label_next_multilabel import confident_images


def test_an_image_is_confident_only_when_every_label_is_sure_on_its_side():
    t = np.array([0.5, 0.2])
    probs = np.array(
        [
            [0.99, 0.005],  # closeness 0.02 and 0.025: sure, labels {a}
            [0.99, 0.5],  # b: 0.625 of the way from 0.2 to 1 only
            [0.001, 0.97],  # sure, labels {b}
            [0.6, 0.0],  # a: close to its threshold
        ]
    )
    sure = confident_images(["p0", "p1", "p2", "p3"], probs, ["a", "b"], t, 0.95)
    assert [s.path for s in sure] == ["p0", "p2"] and [s.predicted for s in sure] == [("a",), ("b",)]
    assert [s.path for s in confident_images(["p0", "p1", "p2", "p3"], probs, ["a", "b"], t, 0.99)] == []


def test_pseudo_labelled_rows_and_their_look_alikes_stay_in_train(tmp_path, capsys):
    csv = make_multilabel_csv(tmp_path / "d", n=24)
    rows = list(read_labels_csv(csv).rows)
    extra = []
    for i, (path, labels) in enumerate(rows[:6]):
        (csv.parent / PSEUDO_FOLDER).mkdir(exist_ok=True)
        shutil.copy(csv.parent / path, csv.parent / PSEUDO_FOLDER / f"p{i}.png")  # identical to a row
        extra.append(f"{PSEUDO_FOLDER}/p{i}.png,{';'.join(labels)}")
    csv.write_text(csv.read_text() + "\n".join(extra) + "\n")
    manifest_path = tmp_path / "m.csv"
    assert main(["inspect", str(csv), "--json", "--manifest", str(manifest_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    counted = sum(len(labels) for _, labels in rows[:6])
    assert sum(report["pseudo_labelled"].values()) == counted  # per label
    assert any("6 pseudo-labelled image(s)" in w for w in report["warnings"])
    split = {e.path: e.split for e in Manifest.load(manifest_path).entries}
    assert all(split[f"{PSEUDO_FOLDER}/p{i}.png"] == "train" for i in range(6))
    assert all(split[path] == "train" for path, _ in rows[:6])  # their identical originals too
    assert {"val", "test"} <= set(split.values())


@pytest.mark.slow
def test_suggest_pseudo_labels_a_multilabel_runs_sure_images_into_its_csv(
    multilabel_probe_run, tmp_path, capsys
):
    run, shared = multilabel_probe_run
    data = tmp_path / "data"
    shutil.copytree(shared.parent, data)  # (the fixture's CSV is shared with other tests)
    csv = data / shared.name
    before = list(read_labels_csv(csv).rows)
    folder = tmp_path / "unlabelled"
    for i in range(6):
        write(folder / f"clear_{i}.png", quadrants({"red": 1.0} if i % 2 else {"blue": 1.0}, 20 + i))
    assert main(["suggest", str(run), str(folder), "--pseudo-label", str(data)]) == 2
    assert "give the run's labels CSV" in capsys.readouterr().err
    args = ["suggest", str(run), str(folder), "--n", "1", "--min-confidence", "0.5", "--json"]
    assert main([*args, "--pseudo-label", str(csv)]) == 0
    out = json.loads(capsys.readouterr().out)
    copies = out["pseudo_labelled"]
    assert copies and len(copies) == len(out["confident"])
    rows = dict(read_labels_csv(csv).rows)
    assert list(read_labels_csv(csv).rows)[: len(before)] == before  # the people's rows are unchanged
    for rel, sure in zip(copies, out["confident"], strict=True):
        assert rel.startswith(f"{PSEUDO_FOLDER}/") and (data / rel).is_file()
        assert rows[rel] == tuple(sorted(sure["predicted"]))
        assert (data / rel).read_bytes() == (folder / sure["path"]).read_bytes()
    assert main([*args, "--pseudo-label", str(csv)]) == 0  # the same images again: nothing new
    assert json.loads(capsys.readouterr().out)["pseudo_labelled"] == []
