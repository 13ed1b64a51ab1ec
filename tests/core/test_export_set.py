"""`export --format all` lands as a set: all the new artefacts and their summary in one rename, or
(cancelled, killed) the previous export exactly as it was."""

from __future__ import annotations

import json
import threading

from tlstudio.core.deploy import export_set
from tlstudio.core.deploy.formats import ALL, DeployCancelled, DeployError, DeployResult, artefact_name


def fake_exports(monkeypatch, *, fail: str | None = None, cancel_after: int | None = None):
    """``export_format`` as a quick stand-in: writes the artefact's folder where it is asked to."""
    calls = []

    def export_format(run, fmt, *, quantize, stop, out, **kwargs):
        name = artefact_name(fmt, quantize)
        calls.append(name)
        if cancel_after is not None and len(calls) > cancel_after:
            raise DeployCancelled(f"{name}: cancelled")
        if name == fail:
            raise DeployError(f"{name} did not verify")
        out.mkdir(parents=True)
        (out / "model.bin").write_text(f"new {name}")
        return DeployResult(fmt, quantize, out, None)

    monkeypatch.setattr(export_set, "export_format", export_format)
    return calls


def old_export(run):
    folder = run / "export"
    for fmt, quantize in ALL:
        (folder / artefact_name(fmt, quantize)).mkdir(parents=True)
        (folder / artefact_name(fmt, quantize) / "model.bin").write_text("old")
    (folder / "summary.json").write_text("[]")
    (folder / "tflite-int8-uint8").mkdir()  # made by a single export with other options: kept
    return folder


def test_a_cancelled_set_leaves_the_previous_export_as_it_was(tmp_path, monkeypatch):
    folder = old_export(tmp_path)
    fake_exports(monkeypatch, cancel_after=2)
    results = export_set.export_all(tmp_path, stop=threading.Event())
    assert [r.folder for r in results] == [None] * len(ALL)
    assert all("nothing was put in place" in r.error for r in results[2:])
    assert {p.read_text() for p in folder.glob("*/model.bin")} == {"old"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_the_set_replaces_the_old_one_whole_and_a_failed_format_keeps_no_stale_artefact(
    tmp_path, monkeypatch
):
    folder = old_export(tmp_path)
    failing = artefact_name(*ALL[1])
    fake_exports(monkeypatch, fail=failing)
    results = export_set.export_all(tmp_path)
    assert not (folder / failing).exists()  # not the old model's artefact beside the new ones
    assert {p.read_text() for p in folder.glob("*/model.bin")} == {
        f"new {artefact_name(*a)}" for a in ALL
    } - {f"new {failing}"}
    assert (folder / "tflite-int8-uint8").is_dir()
    summary = json.loads((folder / "summary.json").read_text())
    assert [s["name"] for s in summary] == [r.name for r in results]
    assert all(r.folder is None or r.folder.parent == folder for r in results)


def test_a_kill_between_the_swaps_two_renames_is_undone_next_time(tmp_path, monkeypatch):
    folder = old_export(tmp_path)
    folder.rename(tmp_path / ".old-export-999999")  # as a kill right after the first rename leaves it
    fake_exports(monkeypatch, cancel_after=0)
    export_set.export_all(tmp_path)  # cancelled at once: the old set must be back
    assert {p.read_text() for p in folder.glob("*/model.bin")} == {"old"}
