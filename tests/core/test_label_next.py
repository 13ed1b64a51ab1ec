"""What to label next: uncertainty and diversity on a trained run (core and `tlstudio suggest`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from factory import COLOURS, make_unlabelled_colours

from tlstudio.core.training.label_next import select_to_label, suggest, uncertainty

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(probe_run):
    return probe_run


def tlstudio(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The CLI in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tlstudio", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture()
def unlabelled(tmp_path, colour_data):
    return make_unlabelled_colours(tmp_path / "unlabelled", colour_data)


def test_uncertainty_is_one_minus_the_margin():
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.4, 0.2], [0.5, 0.3, 0.2]])
    np.testing.assert_allclose(uncertainty(probs), [0.15, 1.0, 0.8])


def test_selection_prefers_uncertain_images_and_spreads_over_the_features():
    # five copies of one confusing picture, two other confusing pictures, ten sure ones
    probs = np.array([[0.5, 0.5]] * 5 + [[0.55, 0.45]] * 2 + [[0.99, 0.01]] * 10)
    features = np.array([[1.0, 0.0, 0.0]] * 5 + [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] + [[1.0, 1.0, 1.0]] * 10)
    picked = select_to_label(probs, features, 3)
    assert picked[0] == 0 and sorted(picked[1:]) == [5, 6]
    assert select_to_label(probs, features, 50)[:1] == [0] and len(select_to_label(probs, features, 50)) == 17
    assert select_to_label(probs, features, 0) == []


def test_suggest_ranks_the_images_between_classes_first_and_skips_known_and_broken_files(run, unlabelled):
    result = suggest(run, unlabelled, n=3)
    assert result.considered == 15
    assert sorted(s.path for s in result.items) == [f"mixed/between_{i}.png" for i in range(3)]
    first = result.items[0]
    assert first.uncertainty > 0.3 and {first.predicted, first.runner_up} <= set(COLOURS)
    reasons = {x["path"]: x["reason"] for x in result.skipped}
    assert reasons["already.png"].startswith("already labelled (same file as red/")
    assert "notes.png" in reasons


def test_cli_suggest_json_and_errors(run, unlabelled, tmp_path):
    out = tlstudio("suggest", str(run), str(unlabelled), "--n", "2", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [s["path"].startswith("mixed/") for s in data["suggestions"]] == [True, True]
    assert set(data["suggestions"][0]) == {"path", "predicted", "confidence", "runner_up", "uncertainty"}
    missing = tlstudio("suggest", str(run), str(tmp_path / "nope"), timeout=60)
    assert missing.returncode == 2 and "UNLABELLED_DIR" in missing.stderr
    not_a_run = tlstudio("suggest", str(unlabelled), str(unlabelled), timeout=120)
    assert not_a_run.returncode == 1 and "cannot be rebuilt" in not_a_run.stderr
    known = tmp_path / "known"
    known.mkdir()
    (known / "again.png").write_bytes((unlabelled / "already.png").read_bytes())
    all_known = tlstudio("suggest", str(run), str(known), timeout=120)
    assert all_known.returncode == 1 and "1 skipped, e.g. again.png (already labelled" in all_known.stderr
    dull = tmp_path / "dull_run"  # a run that did not learn: its labels would be noise
    dull.mkdir()
    (dull / "run.json").write_text(json.dumps({"status": "failed_to_learn"}))
    refused = tlstudio("suggest", str(dull), str(unlabelled), timeout=60)
    assert refused.returncode == 2 and "did not learn" in refused.stderr


def test_cli_suggest_pseudo_labels_only_sure_images_into_the_data_for_training_only(
    run, unlabelled, tmp_path, colour_data
):
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    out = tlstudio(
        "suggest",
        str(run),
        str(unlabelled),
        "--n",
        "3",
        "--json",
        "--pseudo-label",
        str(data),
        "--min-confidence",
        "0.9",
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    sure = {s["path"]: s["predicted"] for s in found["confident"]}
    assert sure and all(p.startswith("clear_") for p in sure)
    assert all(s["confidence"] >= 0.9 for s in found["confident"])
    assert sorted(found["pseudo_labelled"]) == sorted(f"{c}/pseudo-labels/{p}" for p, c in sure.items())
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import make_split

    manifest = make_split(inspect_folder(data).images)
    assert {e.split for e in manifest.entries if "/pseudo-labels/" in e.path} == {"train"}
    again = tlstudio(
        "suggest", str(run), str(unlabelled), "--json", "--pseudo-label", str(data), "--min-confidence", "0.9"
    )
    assert json.loads(again.stdout)["pseudo_labelled"] == []  # the same images are not copied twice
    assert len(list(data.glob("*/pseudo-labels/*"))) == len(sure)


def test_pseudo_labels_are_copied_all_or_nothing(tmp_path, monkeypatch):
    from tlstudio.core.data import relabel
    from tlstudio.core.training.label_next import Suggestion, copy_pseudo_labels

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (inbox / name).write_bytes(name.encode())
    sure = [Suggestion(n, "red", 0.99, "blue", 0.02) for n in ("a.png", "b.png", "c.png")]
    real = relabel.copy_into_class
    calls = []

    def failing(*args):
        calls.append(args)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args)

    monkeypatch.setattr(relabel, "copy_into_class", failing)
    with pytest.raises(relabel.RelabelError, match="no class folder red"):  # not the run's data folder
        copy_pseudo_labels(tmp_path / "data", inbox, sure)
    assert not (tmp_path / "data" / "red").exists() and not calls  # no class of pseudo-labels only
    (tmp_path / "data" / "red").mkdir(parents=True)
    with pytest.raises(relabel.RelabelError, match="nothing was left behind"):
        copy_pseudo_labels(tmp_path / "data", inbox, sure)
    assert not list((tmp_path / "data").glob("*/pseudo-labels/*"))
