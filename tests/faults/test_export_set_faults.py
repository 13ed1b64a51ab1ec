"""Fault cases of `tlstudio export RUN --format all`, each in a real subprocess: a re-export that
cannot verify (the data folder moved, a full disk) keeps the earlier verified artefacts in place and
says which they are, why the new ones failed, and exits 1 with one line naming the recorded folder.

The CLI, the set, the run's inputs and the data check are the real ones; only the conversion and the
runtime check are a quick stand-in (as in tests/core/test_export_set.py), so a set takes a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from factory import make_colour_dataset

from tlstudio.core.data.split import Manifest, ManifestEntry
from tlstudio.core.deploy.format_list import unavailable
from tlstudio.core.deploy.formats import ALL, artefact_name

pytestmark = pytest.mark.slow
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
NAMES = [artefact_name(fmt, quantize) for fmt, quantize in ALL if unavailable(fmt) is None]

# The stand-in exporter: reads the run's test images through the real RunInputs (so a missing data
# folder fails as it does for a real export), then writes a small artefact; FULL_DISK names the
# artefacts whose writing fails with ENOSPC, as a full disk does.
DRIVER = textwrap.dedent(
    """
    import errno, json, os, sys
    from tlstudio.core.deploy import export_set
    from tlstudio.core.deploy.formats import DESCRIPTION, DeployResult, Verification, artefact_name
    from tlstudio.core.deploy.run_inputs import RunInputs

    def export_format(run, fmt, *, quantize, stop, out, data_dir=None, **kwargs):
        name = artefact_name(fmt, quantize)
        images, truth = RunInputs.load(run, data_dir).test_images()
        out.mkdir(parents=True)
        if name in os.environ.get("FULL_DISK", "").split():
            (out / "model.bin").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "model.bin"))
        (out / "model.bin").write_text(f"{name} of {os.environ['ROUND']}")
        v = Verification(len(truth), 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 100.0, 8, rule="stand-in")
        (out / DESCRIPTION).write_text(json.dumps({"verification": v.__dict__}))
        return DeployResult(fmt, quantize, out, v)

    export_set.export_format = export_format
    from tlstudio.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def tlstudio(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.run(
        [sys.executable, str(driver), *args],
        capture_output=True,
        text=True,
        env=ENV | env,
        timeout=300,
    )


def stand_in_run(tmp_path: Path) -> tuple[Path, Path]:
    """A finished run's folder as training leaves it (model file, metadata, run.json recording its
    data folder, the split manifest) on a real data folder."""
    data = make_colour_dataset(tmp_path / "data", per_class=3, size=16)
    run = tmp_path / "run"
    run.mkdir()
    entries = []
    for i, image in enumerate(sorted(data.glob("*/*.png"))):
        split = ("train", "val", "test")[i % 3]
        sha = hashlib.sha256(image.read_bytes()).hexdigest()
        entries.append(ManifestEntry(image.relative_to(data).as_posix(), sha, image.parent.name, split))
    Manifest(tuple(entries)).save(run / "manifest.csv")
    classes = sorted(p.name for p in data.iterdir())
    (run / "model.keras").write_bytes(b"a stand-in model")
    (run / "metadata.json").write_text(json.dumps({"classes": classes, "image_size": 16}))
    (run / "run.json").write_text(json.dumps({"status": "completed", "data_dir": str(data.resolve())}))
    return run, data


def said(proc: subprocess.CompletedProcess) -> list[str]:
    """The command's own lines on stderr (TensorFlow may add notices of its own)."""
    return [line for line in proc.stderr.splitlines() if line.startswith("tlstudio ")]


def artefacts(run: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in (run / "export").glob("*/model.bin")}


def test_a_moved_data_folder_keeps_the_verified_set_and_names_the_recorded_folder(tmp_path):
    run, data = stand_in_run(tmp_path)
    first = tlstudio(tmp_path, "export", str(run), "--format", "all", "--json", ROUND="first")
    assert first.returncode == 0, first.stderr[-3000:]
    assert artefacts(run) == {name: f"{name} of first" for name in NAMES}
    data.rename(tmp_path / "moved")

    again = tlstudio(tmp_path, "export", str(run), "--format", "all", ROUND="second")
    assert again.returncode == 1, again.stdout + again.stderr
    assert artefacts(run) == {name: f"{name} of first" for name in NAMES}  # all six still there
    summary = json.loads((run / "export" / "summary.json").read_text())
    first_time = {s["name"]: s["exported_at"] for s in json.loads(first.stdout)}
    assert [e["name"] for e in summary if e["status"] == "skipped"] == ["coreml"]  # named, not made
    for entry in (e for e in summary if e["status"] != "skipped"):
        assert entry["status"] == "previous" and entry["exported_at"] == first_time[entry["name"]]
        assert entry["previous"]["verification"]["passed"]
        assert str(data.resolve()) in entry["error"] and "not there now" in entry["error"]
    lines = said(again)
    assert len(lines) == 1, again.stderr
    assert str(data.resolve()) in lines[0] and "recorded in run.json" in lines[0]
    assert "not recorded" not in again.stdout + again.stderr
    assert "previous verified artefacts stay in place" in lines[0]
    assert "previous" in again.stdout  # the table says which artefacts are old

    (tmp_path / "moved").rename(data)  # back: a new set replaces the old one whole
    third = tlstudio(tmp_path, "export", str(run), "--format", "all", ROUND="third")
    assert third.returncode == 0, third.stderr[-3000:]
    assert artefacts(run) == {name: f"{name} of third" for name in NAMES}
    summary = json.loads((run / "export" / "summary.json").read_text())
    assert {s["status"] for s in summary if s["name"] in NAMES} == {"new"}


def test_a_full_disk_keeps_the_earlier_artefacts_it_could_not_replace(tmp_path):
    run, _ = stand_in_run(tmp_path)
    first = tlstudio(tmp_path, "export", str(run), "--format", "all", ROUND="first")
    assert first.returncode == 0, first.stderr[-3000:]
    full = ["tflite-dynamic", "tflite-int8", "onnx"]
    again = tlstudio(
        tmp_path, "export", str(run), "--format", "all", "--json", ROUND="second", FULL_DISK=" ".join(full)
    )
    assert again.returncode == 1, again.stderr[-3000:]
    assert artefacts(run) == {name: f"{name} of {'first' if name in full else 'second'}" for name in NAMES}
    status = {s["name"]: s["status"] for s in json.loads((run / "export" / "summary.json").read_text())}
    assert status.pop("coreml") == "skipped"
    assert status == {name: "previous" if name in full else "new" for name in NAMES}
    assert len(said(again)) == 1 and "the disk is full" in said(again)[0], again.stderr
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no staging left behind
