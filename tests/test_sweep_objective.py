"""`tlstudio sweep --objective loss`: the study minimises the validation log loss, and the best
trial (the one scored on the test split) is the trial with the lowest."""

from __future__ import annotations

import json

import pytest

from tlstudio.cli import main


@pytest.mark.slow
def test_objective_loss_minimises_the_validation_loss(colour_data, tiny_backbone_file, tmp_path, capsys):
    import optuna

    space = tmp_path / "space.json"
    space.write_text(json.dumps({"learning_rate": {"low": 1e-3, "high": 1e-1, "log": True}}))
    out = tmp_path / "sweep"
    args = ["sweep", str(colour_data), "--out", str(out), "--backbone", str(tiny_backbone_file)]
    args += ["--space", str(space), "--trials", "2", "--objective", "loss", "--epochs", "1"]
    args += ["--fine-tune-epochs", "0", "--batch-size", "8", "--no-augment", "--threads", "1", "--json"]
    args += ["--no-feature-cache"]  # (the head trains with the optimizer: the learning rate matters)
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["objective"] == "validation loss" and summary["complete"] == 2
    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{out / 'sweep.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert all(t.value == pytest.approx(t.user_attrs["val_loss"]) for t in complete)
    assert len({t.value for t in complete}) == 2  # two different losses: the choice means something
    lowest = min(complete, key=lambda t: t.user_attrs["val_loss"])
    assert summary["best"]["trial"] == lowest.number and summary["best"]["value"] == pytest.approx(
        lowest.value
    )
    assert summary["best"]["test"]["trial"] == lowest.number  # the one scored on the test split
    assert main(["runs", str(out), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["best"] == lowest.number and listed["finished"]
    assert listed["importance"] == {"learning_rate": 1.0}  # (one parameter: all of it)
