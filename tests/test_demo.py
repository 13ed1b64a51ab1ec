"""`tlstudio demo` keeps its backbone where the run's record can find it later."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tlstudio.cli import main
from tlstudio.cli.demo import backbone_folder


def test_the_demo_records_a_backbone_that_stays_beside_its_run_folder(tmp_path, monkeypatch, capsys):
    import tlstudio.core.data.sample as sample

    full = sample.sample_settings
    monkeypatch.setattr(sample, "sample_settings", lambda path: replace(full(path), epochs=1))  # fast
    out = tmp_path / "runs" / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    capsys.readouterr()
    for record in ("settings.json", "run.json"):
        recorded = Path(json.loads((out / record).read_text())["backbone"])
        assert recorded.is_file(), (record, recorded)
        assert recorded.parent == tmp_path / "runs" / "demo-backbone", recorded  # not the temp folder


def test_the_backbone_folder_is_named_after_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert backbone_folder(Path("runs/demo")) == tmp_path / "runs" / "demo-backbone"
    assert backbone_folder(Path("runs/demo/")) == tmp_path / "runs" / "demo-backbone"


def test_the_demo_never_replaces_a_folder_of_someone_elses_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["demo", "--out", str(mine)]) == 2
    assert "not a run" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "years of work"
