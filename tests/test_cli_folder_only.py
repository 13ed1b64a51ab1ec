"""Commands that take class folders only (compare, auto, sweep, the app's sweep workers) name a labels
CSV as such, with exit 2 before any work, instead of saying it "is not a folder"."""

from __future__ import annotations

from factory import make_multilabel_csv

from tlstudio.cli import main
from tlstudio.core.studies.workers import WorkerPlan, plan_problem


def test_a_labels_csv_is_named_by_the_commands_that_take_folders_only(tmp_path, capsys):
    csv = make_multilabel_csv(tmp_path / "data", n=8)
    for command in (
        ["sweep", str(csv), "--out", str(tmp_path / "sweep")],
        ["compare", str(csv), "--backbones", "MobileNetV2", "--out", str(tmp_path / "compare")],
        ["auto", str(csv), "--out", str(tmp_path / "auto")],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "not a labels CSV" in err and command[0] in err
        assert not (tmp_path / command[0]).exists()  # nothing written
    assert main(["sweep", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s2")]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a folder")


def test_the_apps_sweep_workers_refuse_a_labels_csv_before_starting(tmp_path):
    csv = make_multilabel_csv(tmp_path / "data", n=8)
    why = plan_problem(WorkerPlan(data_dir=csv, out=tmp_path / "sweep", trials=2, workers=1))
    assert why is not None and "labels CSV" in why
