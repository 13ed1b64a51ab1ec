"""Resume re-reads the split's files: a file missing, or whose bytes changed since the split, refuses the
resume with the files named (and recorded in run.json); every file a run drops is named."""

from __future__ import annotations

import json
import shutil

import pytest
from factory import make_colour_dataset

from tlstudio.core import events as ev
from tlstudio.core.data.health import inspect_folder
from tlstudio.core.data.scan import in_folder
from tlstudio.core.data.split import make_split
from tlstudio.core.training import resume


@pytest.fixture
def split(tmp_path):
    data = make_colour_dataset(tmp_path / "data", per_class=8)
    return data, make_split(inspect_folder(data).images)


def other_class_file(manifest, entry):
    return next(e for e in manifest.entries if e.label != entry.label)


def test_an_untouched_folder_passes(split):
    data, manifest = split
    events = []
    check = resume.check_files(manifest, data, on_event=events.append)
    assert check.ok and check.files() == []
    assert events and all(isinstance(e, ev.Working) for e in events)
    assert events[-1].done == events[-1].total == len(manifest.entries)


def test_replaced_truncated_and_missing_files_are_named(split):
    data, manifest = split
    val, test, train = (manifest.subset(s)[0] for s in ("val", "test", "train"))
    donor = in_folder(data, other_class_file(manifest, val).path)
    in_folder(data, val.path).write_bytes(donor.read_bytes())  # another class's image, same name
    broken = in_folder(data, test.path)
    broken.write_bytes(broken.read_bytes()[:60])  # truncated
    in_folder(data, train.path).unlink()
    check = resume.check_files(manifest, data)
    assert not check.ok
    assert set(check.changed) == {val.path, test.path} and check.missing == (train.path,)
    line = check.describe(data)
    assert "\n" not in line and val.path in line and test.path in line and train.path in line
    assert {f["path"]: f["problem"] for f in check.files()} == {
        val.path: "changed since the split",
        test.path: "changed since the split",
        train.path: "missing",
    }
    only_there = resume.check_files(manifest, data, hashes=False)  # a new run's given manifest
    assert only_there.missing == (train.path,) and not only_there.changed


def test_many_changed_files_name_the_first_few_and_count_the_rest(split):
    data, manifest = split
    for e in manifest.entries[:7]:
        in_folder(data, e.path).write_bytes(b"not the same bytes")
    line = resume.check_files(manifest, data).describe(data)
    names = [e.path for e in manifest.entries[:7]]
    assert all(n in line for n in names[: resume.SHOWN]) and not any(n in line for n in names[resume.SHOWN :])
    assert f"and {7 - resume.SHOWN} more" in line and line.startswith("7 file(s)")


def test_a_clean_check_does_not_hide_a_later_change(split):
    data, manifest = split
    assert resume.check_files(manifest, data).ok  # remembered: the next check may skip reading
    entry = manifest.subset("val")[0]
    path = in_folder(data, entry.path)
    path.write_bytes(in_folder(data, other_class_file(manifest, entry).path).read_bytes())
    assert resume.check_files(manifest, data).changed == (entry.path,)


def interrupted_run(tmp_path, data, manifest):
    run = tmp_path / "run"
    (run / "export" / "tflite").mkdir(parents=True)
    manifest.save(run / "manifest.csv")
    (run / "run.json").write_text(json.dumps({"status": "running", "data_dir": str(data)}))
    return run


def test_the_refusal_is_one_line_with_what_to_do_and_is_recorded_in_run_json(split, tmp_path):
    data, manifest = split
    run = interrupted_run(tmp_path, data, manifest)
    assert resume.refuse_resume(run, data) is None
    entry = manifest.subset("val")[0]
    in_folder(data, entry.path).write_bytes(b"other bytes")
    why = resume.refuse_resume(run, data)
    assert why and "\n" not in why and entry.path in why and "put the original files back" in why
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "running"  # still interrupted, resumable once the file is back
    assert info["resume_refused"]["files"] == [{"path": entry.path, "problem": "changed since the split"}]
    assert not (run / ".lock").exists()


def test_a_session_resuming_on_changed_files_refuses_before_touching_the_run(
    split, tmp_path, tiny_backbone_file
):
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.session import TrainingSession

    data, manifest = split
    run = interrupted_run(tmp_path, data, manifest)
    (run / "history.json").write_text('{"epochs": [], "batches": []}')
    entry = manifest.subset("test")[0]
    broken = in_folder(data, entry.path)
    broken.write_bytes(broken.read_bytes()[:50])
    events = []
    session = TrainingSession(
        TrainSettings(backbone=str(tiny_backbone_file)), data, run, on_event=events.append, resume=True
    )
    result = session.run()
    assert result.status == "failed" and entry.path in result.error
    failed = [e for e in events if isinstance(e, ev.RunFailed)]
    assert len(failed) == 1 and entry.path in failed[0].error and "new run" in failed[0].hint
    assert (run / "export" / "tflite").is_dir()  # nothing of the run was touched
    assert (run / "history.json").read_text() == '{"epochs": [], "batches": []}'
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "running" and info["resume_refused"]["files"][0]["path"] == entry.path
    assert not (run / ".lock").exists()


@pytest.mark.slow
def test_a_test_image_broken_after_the_split_is_named_when_dropped(colour_data, tiny_backbone_file, tmp_path):
    from tlstudio.core.settings import Augmentation, TrainSettings
    from tlstudio.core.training.session import TrainingSession

    data = shutil.copytree(colour_data, tmp_path / "data")
    manifest = make_split(inspect_folder(data).images)
    manifest.save(tmp_path / "split.csv")
    entry = manifest.subset("test")[0]
    broken = in_folder(data, entry.path)
    broken.write_bytes(broken.read_bytes()[:60])  # a new run with a given split reads it as it is now
    events = []
    s = TrainSettings(
        backbone=str(tiny_backbone_file),
        fine_tune_epochs=0,
        batch_size=8,
        augmentation=Augmentation(False, 0.0),
    )
    result = TrainingSession(
        s, data, tmp_path / "run", manifest=tmp_path / "split.csv", on_event=events.append, export=False
    ).run()
    assert result.status == "completed", result.error
    skipped = [f for e in events if isinstance(e, ev.FilesSkipped) for f in e.files]
    assert entry.path in [path for path, _ in skipped]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert entry.path in [f["path"] for f in info["skipped_while_training"]]
