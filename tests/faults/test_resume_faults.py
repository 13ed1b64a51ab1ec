"""Resume on files that changed since the split, in a real subprocess as a user would meet it: a killed
run whose validation image was replaced by another class's image, or whose test image broke, is refused
with the files named (exit 2, nothing trained, the refusal in run.json); with the files put back it
resumes."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from factory import make_colour_dataset
from test_faults import long_run, start, tlstudio, wait_for

from tlstudio.core.data.split import Manifest
from tlstudio.core.results.run_folder import run_status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def killed(tmp_path_factory, tiny_backbone_file):
    """A run killed after its first finished epoch, and its data folder (copied by each test)."""
    root = tmp_path_factory.mktemp("resume-faults")
    data = make_colour_dataset(root / "data", per_class=15, seed=3)
    run = root / "run"
    proc = start(*long_run(data, tiny_backbone_file, run))
    wait_for(run / "checkpoints" / "last.json")
    proc.kill()
    proc.wait()
    assert run_status(run)["status"] == "interrupted"
    return run, data


def copies(killed, tmp_path: Path) -> tuple[Path, Path, Manifest]:
    run, data = (shutil.copytree(p, tmp_path / p.name) for p in killed)
    return run, data, Manifest.load(run / "manifest.csv")


def untouched(run: Path) -> dict[str, bytes]:
    names = ("history.json", "checkpoints/last.json", "checkpoints/last.weights.h5", "manifest.csv")
    return {name: (run / name).read_bytes() for name in names}


def test_a_validation_image_replaced_by_another_class_refuses_the_resume(killed, tmp_path):
    run, data, manifest = copies(killed, tmp_path)
    val = manifest.subset("val")[0]
    donor = next(e for e in manifest.entries if e.label != val.label)
    original = (data / val.path).read_bytes()
    (data / val.path).write_bytes((data / donor.path).read_bytes())
    before = untouched(run)
    refused = tlstudio("train", "--resume", str(run), str(data))
    assert refused.returncode == 2, refused.stderr[-3000:]
    lines = [line for line in refused.stderr.splitlines() if "cannot resume" in line]
    assert len(lines) == 1 and val.path in lines[0] and "changed since the split" in lines[0]
    assert "put the original files back" in lines[0] and "new run" in lines[0]
    assert "Resuming" not in refused.stderr
    assert untouched(run) == before  # nothing trained, nothing rewritten
    info = json.loads((run / "run.json").read_text())
    assert [f["path"] for f in info["resume_refused"]["files"]] == [val.path]
    assert run_status(run)["status"] == "interrupted" and not (run / ".lock").exists()

    (data / val.path).write_bytes(original)  # put back: the run resumes and trains on
    proc = start("train", "--resume", str(run), str(data))
    try:
        end = time.monotonic() + 300
        while json.loads((run / "history.json").read_text()) == json.loads(before["history.json"]):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < end, "the resumed run never finished an epoch"
            time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait()


def test_a_test_image_broken_before_the_resume_is_named(killed, tmp_path):
    run, data, manifest = copies(killed, tmp_path)
    test = manifest.subset("test")[-1]
    broken = data / test.path
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # truncated
    (data / manifest.subset("train")[0].path).unlink()  # and one missing: both named alike
    before = untouched(run)
    refused = tlstudio("train", "--resume", str(run), str(data))
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert test.path in refused.stderr and manifest.subset("train")[0].path in refused.stderr
    assert "1 changed since the split" in refused.stderr and "1 missing" in refused.stderr
    assert untouched(run) == before
    recorded = json.loads((run / "run.json").read_text())["resume_refused"]
    assert {f["path"]: f["problem"] for f in recorded["files"]} == {
        test.path: "changed since the split",
        manifest.subset("train")[0].path: "missing",
    }
