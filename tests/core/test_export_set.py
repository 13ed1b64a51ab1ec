"""`export --format all` lands as a set: all the new artefacts and their summary in one rename, or
(cancelled, killed) the previous export exactly as it was."""

from __future__ import annotations

import errno
import json
import threading

import pytest

from tlstudio.core.deploy import export_set
from tlstudio.core.deploy.formats import ALL, DeployCancelled, DeployError, DeployResult, artefact_name


def fake_exports(monkeypatch, *, fail: str | OSError | None = None, cancel_after: int | None = None):
    """``export_format`` as a quick stand-in: writes the artefact's folder where it is asked to."""
    calls = []

    def export_format(run, fmt, *, quantize, stop, out, **kwargs):
        name = artefact_name(fmt, quantize)
        calls.append(name)
        if cancel_after is not None and len(calls) > cancel_after:
            raise DeployCancelled(f"{name}: cancelled")
        if name == fail:
            raise DeployError(f"{name} did not verify")
        if isinstance(fail, OSError) and name in fail.filename:
            out.mkdir(parents=True)
            (out / "model.bin").write_text("half")
            raise fail
        out.mkdir(parents=True)
        (out / "model.bin").write_text(f"new {name}")
        (out / "model.json").write_text(json.dumps({"verification": {"agreement": 1.0}}))
        return DeployResult(fmt, quantize, out, None)

    monkeypatch.setattr(export_set, "export_format", export_format)
    return calls


OLD_TIME = "2024-05-01T10:00:00+00:00"


def old_export(run, model_sha256=None):
    """A verified earlier set (each artefact with its model.json, as only a verified one has)."""
    folder = run / "export"
    summary = []
    for fmt, quantize in ALL:
        name = artefact_name(fmt, quantize)
        (folder / name).mkdir(parents=True)
        (folder / name / "model.bin").write_text("old")
        (folder / name / "model.json").write_text(json.dumps({"verification": {"agreement": 0.99}}))
        summary.append({"name": name, "exported_at": OLD_TIME, "model_sha256": model_sha256})
    (folder / "summary.json").write_text(json.dumps(summary))
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


def test_the_set_replaces_the_old_one_and_a_failed_format_keeps_its_earlier_verified_artefact(
    tmp_path, monkeypatch
):
    folder = old_export(tmp_path)
    failing = artefact_name(*ALL[1])
    fake_exports(monkeypatch, fail=failing)
    results = export_set.export_all(tmp_path)
    assert (folder / failing / "model.bin").read_text() == "old"  # a failure removes no verified artefact
    assert {p.parent.name: p.read_text() for p in folder.glob("*/model.bin")} == {
        artefact_name(*a): f"new {artefact_name(*a)}" for a in ALL
    } | {failing: "old"}
    assert (folder / "tflite-int8-uint8").is_dir()
    summary = json.loads((folder / "summary.json").read_text())
    assert [s["name"] for s in summary] == [r.name for r in results]
    assert all(r.folder is None or r.folder.parent == folder for r in results)
    by_name = {s["name"]: s for s in summary}
    kept = by_name.pop(failing)
    assert kept["status"] == "previous" and kept["exported_at"] == OLD_TIME
    assert kept["folder"] == str(folder / failing) and "did not verify" in kept["error"]
    assert kept["previous"]["verification"] == {"agreement": 0.99}
    assert "stays in place" in kept["error"] and OLD_TIME in kept["error"]  # the app's table says it too
    assert by_name.pop("coreml")["status"] == "skipped"  # named in every set, with the reason
    assert {s["status"] for s in by_name.values()} == {"new"}
    assert all(s["exported_at"] > OLD_TIME and s["error"] is None for s in by_name.values())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_second_failure_keeps_the_artefact_with_its_first_time(tmp_path, monkeypatch):
    folder = old_export(tmp_path)
    fake_exports(monkeypatch, fail="onnx")
    export_set.export_all(tmp_path)
    fake_exports(monkeypatch, fail="onnx")
    export_set.export_all(tmp_path)
    kept = {s["name"]: s for s in json.loads((folder / "summary.json").read_text())}["onnx"]
    assert kept["status"] == "previous" and kept["exported_at"] == OLD_TIME
    assert (folder / "onnx" / "model.bin").read_text() == "old"


def test_no_earlier_artefact_of_another_model_or_unverified_is_kept(tmp_path, monkeypatch):
    (tmp_path / "model.keras").write_bytes(b"the model now")
    folder = old_export(tmp_path, model_sha256="0" * 64)  # made from another model.keras
    fake_exports(monkeypatch, fail="onnx")
    results = export_set.export_all(tmp_path)
    assert not (folder / "onnx").exists() and {r.name: r for r in results}["onnx"].status == "failed"
    summary = json.loads((folder / "summary.json").read_text())
    assert {s["model_sha256"] for s in summary} == {export_set.model_fingerprint(tmp_path)}
    (folder / "tflite" / "model.json").unlink()  # not verified (only a verified one has it)
    fake_exports(monkeypatch, fail="tflite")
    export_set.export_all(tmp_path)
    assert not (folder / "tflite").exists()


def test_a_full_disk_while_writing_a_format_keeps_its_earlier_artefact(tmp_path, monkeypatch):
    folder = old_export(tmp_path)
    full = OSError(errno.ENOSPC, "No space left on device", "tflite-int8 tflite-dynamic onnx")
    fake_exports(monkeypatch, fail=full)
    results = {r.name: r for r in export_set.export_all(tmp_path)}
    for name in ("tflite-int8", "tflite-dynamic", "onnx"):
        assert (folder / name / "model.bin").read_text() == "old", name
        assert results[name].status == "previous" and "the disk is full" in results[name].error
    assert (folder / "saved_model" / "model.bin").read_text() == "new saved_model"


def test_a_disk_too_full_for_the_set_changes_nothing(tmp_path, monkeypatch):
    folder = old_export(tmp_path)
    before = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    fake_exports(monkeypatch)

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(export_set.atomic, "write_json", full)
    with pytest.raises(DeployError, match=r"disk is full.*previous export/ is as it was"):
        export_set.export_all(tmp_path)
    assert {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_carried_artefacts_are_hard_links_not_second_copies(tmp_path, monkeypatch):
    folder = old_export(tmp_path)
    inode = (folder / "onnx" / "model.bin").stat().st_ino
    fake_exports(monkeypatch, fail="onnx")
    export_set.export_all(tmp_path)
    assert (folder / "onnx" / "model.bin").stat().st_ino == inode


def test_a_kill_between_the_swaps_two_renames_is_undone_next_time(tmp_path, monkeypatch):
    folder = old_export(tmp_path)
    folder.rename(tmp_path / ".old-export-999999")  # as a kill right after the first rename leaves it
    fake_exports(monkeypatch, cancel_after=0)
    export_set.export_all(tmp_path)  # cancelled at once: the old set must be back
    assert {p.read_text() for p in folder.glob("*/model.bin")} == {"old"}


def run_folder_recording(tmp_path, data_dir: str):
    """A finished run's folder (a stand-in model file) whose run.json records ``data_dir``."""
    from tlstudio.core.data.split import Manifest, ManifestEntry

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"stand-in")
    (run / "metadata.json").write_text(json.dumps({"classes": ["a"], "image_size": 8}))
    (run / "run.json").write_text(json.dumps({"status": "completed", "data_dir": data_dir}))
    Manifest((ManifestEntry("a/x.png", "0" * 64, "a", "test"),)).save(run / "manifest.csv")
    return run


def test_a_recorded_data_folder_that_moved_is_named_not_called_unrecorded(tmp_path):
    from tlstudio.core.deploy.run_inputs import RunInputs

    gone = tmp_path / "data"
    inputs = RunInputs.load(run_folder_recording(tmp_path, str(gone)))
    for read in (inputs.test_images, lambda: inputs.calibration_images(10)):
        with pytest.raises(DeployError) as err:
            read()
        assert f"data folder {gone} (recorded in run.json) is not there now" in str(err.value)
        assert "not recorded" not in str(err.value) and "--data DIR" in str(err.value)
    given = RunInputs.load(tmp_path / "run", tmp_path / "elsewhere")
    with pytest.raises(DeployError, match="given with --data"):
        given.test_images()


def test_a_relative_recorded_data_folder_is_read_from_the_run_folder(tmp_path):
    from tlstudio.core.deploy.run_inputs import RunInputs

    run = run_folder_recording(tmp_path, "../data")
    (tmp_path / "data" / "a").mkdir(parents=True)
    assert RunInputs.load(run).data_dir == run / "../data"
