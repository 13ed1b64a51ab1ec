"""`tlstudio compare`: candidates on one split, the from-scratch baseline, the table and files."""

from __future__ import annotations

import json

import pytest

from tlstudio.cli import main
from tlstudio.core.settings import TrainSettings
from tlstudio.core.training.comparison import baseline_settings

pytestmark = pytest.mark.slow


def test_baseline_has_the_same_budget_from_random_weights():
    s = TrainSettings(backbone="x", epochs=7, fine_tune_epochs=3)
    b = baseline_settings(s)
    assert (b.weights, b.freeze.preset, b.epochs, b.fine_tune_epochs) == ("none", "none", 10, 0)
    assert b.freeze.train_batchnorm


def test_compare_with_a_baseline_on_one_split(colour_data, tiny_backbone_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            str(colour_data),
            "--backbones",
            str(tiny_backbone_file),
            "--plans",
            "all,none",
            "--baseline",
            "--epochs",
            "3",
            "--fine-tune-epochs",
            "0",
            "--batch-size",
            "8",
            "--learning-rate",
            "0.01",
            "--no-augment",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "pretrained [all]" in text and "pretrained [none]" in text and "from scratch" in text
    rows = json.loads((out / "comparison.json").read_text())
    assert [r["status"] for r in rows] == ["completed"] * 3
    assert all(r["test_accuracy"] is not None and r["latency_ms"] > 0 and r["model_mb"] > 0 for r in rows)
    assert "95% interval" in text and "(McNemar, " in text  # each against the best, image by image
    assert all(r["test_accuracy_low"] <= r["test_accuracy"] <= r["test_accuracy_high"] for r in rows)
    assert sum(r["versus_best"] is None for r in rows) == 1 and rows[0]["tied_with_best"] is not None
    fingerprints = {
        json.loads((out / r["run_dir"].split("/")[-1] / "run.json").read_text())["manifest_fingerprint"]
        for r in rows
    }
    assert len(fingerprints) == 1  # the same split for everyone
    scratch = json.loads((out / rows[2]["run_dir"].split("/")[-1] / "settings.json").read_text())
    assert scratch["weights"] == "none" and scratch["freeze"]["preset"] == "none" and scratch["epochs"] == 3
    assert (out / "comparison.csv").read_text().count("\n") == 4
    assert (out / "comparison.png").stat().st_size > 1000


def test_runs_lists_and_diffs_the_comparison_runs(colour_data, tiny_backbone_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", str(colour_data), "--backbones", str(tiny_backbone_file), "--baseline"]
    args += ["--epochs", "1", "--fine-tune-epochs", "0", "--batch-size", "8", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["runs", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "01-pretrained" in listing and "02-pretrained-from-scratch" in listing
    assert main(["runs", str(out), "--diff", "1", "2", "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    changed = {row["setting"] for row in diff["settings_diff"]}
    assert {"weights", "freeze.preset"} <= changed and "batch_size" not in changed
    assert diff["same_data"] is True
    assert diff["verdict"]["paired"] and diff["verdict"]["images"] == diff["accuracy"][0]["images"] > 0
    assert "test_accuracy" in {row["metric"] for row in diff["metrics"]}
    assert main(["runs", str(out), "--diff", "1", "9"]) == 2


def test_runs_tensorboard_says_how_to_get_it_when_missing(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a)
    )
    runs = tmp_path / "TL Studio runs"  # a space in the path: the hint must paste as one argument
    runs.mkdir()
    assert main(["runs", str(runs), "--tensorboard"]) == 1
    err = capsys.readouterr().err
    assert "pip install tensorboard" in err and f"--logdir '{runs}'" in err


def test_compare_refuses_what_a_candidate_cannot_run_before_any_work(
    colour_data, tiny_backbone_file, tmp_path, capsys
):
    """Each candidate's settings are checked up front, as `train` checks its own: the first candidate
    must not train for an hour before the second is refused."""
    out = tmp_path / "cmp"
    last4 = ["--probe-features", "last4", "--fine-tune-epochs", "0"]  # a CNN has no class tokens
    code = main(
        ["compare", str(colour_data), "--backbones", str(tiny_backbone_file), "--out", str(out), *last4]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "last4 needs a KerasHub ViT" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
