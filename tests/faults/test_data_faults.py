"""Hostile data folders and kills around them, each in a real subprocess as a user would meet them:
class folders that are links (out of the data folder, or into a loop), ten thousand empty class
folders, class names spelled decomposed (a copy from macOS), a `suggest --pseudo-label` killed midway
and a run killed while it wrote a checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import unicodedata
from pathlib import Path

import pytest
from factory import make_colour_dataset, make_unlabelled_colours

pytestmark = pytest.mark.slow
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
NFD = {"red": unicodedata.normalize("NFD", "rosé"), "green": unicodedata.normalize("NFD", "vérde")}
NFD["blue"] = unicodedata.normalize("NFD", "bleü")


def tlstudio(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tlstudio", *args], capture_output=True, text=True, env=ENV, timeout=600
    )


def python(code: str) -> subprocess.CompletedProcess:
    """Python code in its own process (the test's ``factory`` importable)."""
    env = ENV | {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), ENV.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def decomposed(tmp_path_factory):
    """Colour data whose class folders have decomposed (NFD) names, as a macOS copy has them."""
    root = make_colour_dataset(tmp_path_factory.mktemp("nfd") / "data", per_class=12)
    for plain, name in NFD.items():
        (root / plain).rename(root / name)
    return root


@pytest.fixture(scope="module")
def decomposed_run(decomposed, tiny_backbone_file, tmp_path_factory):
    """A run trained on the decomposed folder (its classes recorded in NFC)."""
    run = tmp_path_factory.mktemp("nfd-run") / "run"
    args = ("train", str(decomposed), "--backbone", str(tiny_backbone_file), "--out", str(run))
    done = tlstudio(*args, "--fine-tune-epochs", "0", "--batch-size", "8", "--no-augment")
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def fresh_copy(decomposed: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(decomposed, data)
    return data


def test_linked_class_folders_are_never_followed_out_of_the_data_folder(tmp_path):
    data = make_colour_dataset(tmp_path / "data", per_class=6)
    os.symlink("/etc", data / "etc")  # ~1,100 files outside
    os.symlink("..", data / "up")  # every other class's images again
    os.symlink("loop", data / "red" / "loop")  # a link to itself
    outside = tmp_path / "outside.png"
    shutil.copy(next((data / "red").glob("*.png")), outside)
    os.symlink(outside, data / "red" / "from_outside.png")
    done = tlstudio("inspect", str(data), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["classes"] == {"blue": 6, "green": 6, "red": 6}, report["classes"]
    assert report["empty_classes"] == []
    why = {s["path"]: s["reason"] for s in report["skipped"]}
    assert why["etc"].startswith("linked folder, not followed") and why["up"] == why["etc"]
    assert why["red/from_outside.png"] == "link to a file outside the data folder, not followed"
    assert "red/loop" in why
    assert any(w.startswith("3 link(s) not followed") for w in report["warnings"]), report["warnings"]


def test_ten_thousand_empty_class_folders_give_one_warning(tmp_path):
    data = make_colour_dataset(tmp_path / "data", per_class=6)
    for i in range(10_000):
        (data / f"empty_{i:05d}").mkdir()
    done = tlstudio("inspect", str(data))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) < 80, done.stdout[-3000:]
    assert "10000 empty class folders ('empty_00000', 'empty_00001', 'empty_00002' and 9,997 more)" in (
        done.stdout
    )
    assert "has no usable images" not in done.stdout


def test_one_class_spelled_by_two_folders_in_two_unicode_forms_is_one_class_with_a_warning(tmp_path):
    data = make_colour_dataset(tmp_path / "data", per_class=6)
    (data / "red").rename(data / "café")
    (data / "blue").rename(data / unicodedata.normalize("NFD", "café"))
    report = json.loads(tlstudio("inspect", str(data), "--json").stdout)
    assert report["classes"] == {"café": 12, "green": 6}
    assert any(w.startswith("1 class name(s) spelled by more than one folder") for w in report["warnings"])


def test_suggest_pseudo_labels_into_decomposed_class_folders_it_was_trained_on(
    decomposed, decomposed_run, tmp_path, colour_data
):
    data = fresh_copy(decomposed, tmp_path)
    unlabelled = make_unlabelled_colours(tmp_path / "unlabelled", colour_data)
    done = tlstudio(
        "suggest", str(decomposed_run), str(unlabelled), "--n", "3", "--json", "--pseudo-label", str(data),
        "--min-confidence", "0.5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    copies = json.loads(done.stdout)["pseudo_labelled"]
    assert copies and all(c.split("/")[0] in NFD.values() for c in copies)  # the folders' own names
    assert sorted(os.listdir(data)) == sorted([*NFD.values(), ".tlstudio-pseudo-labels.json"])
    for copy in copies:
        assert (data / copy).is_file()
    record = json.loads((data / ".tlstudio-pseudo-labels.json").read_text())
    assert [r["files"] for r in record] == [copies]  # what was added, recorded
    assert not any(p.name.startswith(".tlstudio-staging") for p in data.iterdir())
    report = json.loads(tlstudio("inspect", str(data), "--json").stdout)
    assert set(report["classes"]) == {unicodedata.normalize("NFC", n) for n in NFD.values()}
    assert report["skipped"] == []  # the record is TL Studio's own, not a skipped file


def test_move_to_class_and_label_next_into_a_decomposed_class_use_its_folder(decomposed, tmp_path):
    from tlstudio.core.data import relabel
    from tlstudio.core.data.health import inspect_folder
    from tlstudio.core.data.split import make_split

    data = fresh_copy(decomposed, tmp_path)
    report = inspect_folder(data)
    manifest = make_split(report.images)
    red = unicodedata.normalize("NFC", NFD["red"])  # as the GUI's class list shows it
    blue_image = report.images_of(unicodedata.normalize("NFC", NFD["blue"]))[0].path
    move, updated = relabel.move_to_class(data, blue_image, red, manifest=manifest)
    assert move.new_path.startswith(NFD["red"] + "/") and move.new_label == red
    assert (data / move.new_path).is_file() and len(os.listdir(data)) == 3  # no look-alike folder
    entry = next(e for e in updated.entries if e.path == move.new_path)
    assert entry.label == red and red in updated.classes and len(updated.classes) == 3
    with pytest.raises(relabel.RelabelError, match="already in"):
        relabel.move_to_class(data, move.new_path, unicodedata.normalize("NFD", red))
    relabel.undo(data, move)
    outside = tmp_path / "new.png"
    shutil.copy(data / blue_image, outside)
    copy = relabel.copy_into_class(data, outside, red)
    assert copy.startswith(NFD["red"] + "/") and len(os.listdir(data)) == 3


KILL_DURING = """
    import os, signal
    from pathlib import Path
    from tlstudio.core.data import relabel
    from tlstudio.core.training import label_next
    from tlstudio.core.training.label_next import Suggestion, copy_pseudo_labels

    inbox = Path({inbox!r})
    sure = [Suggestion(p.name, {label!r}, 0.99, "x", 0.02) for p in sorted(inbox.glob("*.png"))]
    calls = []
    real = {patched}

    def killing(*args):
        calls.append(args)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)

    {target} = killing
    copy_pseudo_labels({data!r}, inbox, sure)
"""


@pytest.mark.parametrize(
    ("stage", "patched", "target"),
    [
        ("copying", "relabel.copy_into_class", "relabel.copy_into_class"),
        ("moving into place", "os.rename", "label_next.os.rename"),
    ],
)
def test_a_killed_pseudo_label_copy_leaves_nothing_or_a_complete_recorded_set(
    decomposed, tmp_path, stage, patched, target
):
    data = fresh_copy(decomposed, tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    red = next((data / NFD["red"]).glob("*.png"))
    for i in range(5):  # five different files
        (inbox / f"new_{i}.png").write_bytes(red.read_bytes() + bytes([i]))
    label = unicodedata.normalize("NFC", NFD["red"])
    code = KILL_DURING.format(inbox=str(inbox), label=label, data=str(data), patched=patched, target=target)
    killed = python(code)
    assert killed.returncode == -9, killed.stderr[-2000:]
    pseudo = data / NFD["red"] / "pseudo-labels"
    staging = [p for p in data.iterdir() if p.name.startswith(".tlstudio-staging-")]
    assert len(staging) == 1
    report = json.loads(tlstudio("inspect", str(data), "--json").stdout)
    assert any("interrupted" in w for w in report["warnings"]), report["warnings"]
    if stage == "copying":
        assert not pseudo.exists()  # nothing in place while it was being copied
    else:
        assert len(list(pseudo.iterdir())) == 2  # killed between two moves: the plan finishes it
    again = python(
        f"""
        from tlstudio.core.training.label_next import finish_interrupted_copies
        print(finish_interrupted_copies({str(data)!r}))
        """
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert not any(p.name.startswith(".tlstudio-staging") for p in data.iterdir())
    record = data / ".tlstudio-pseudo-labels.json"
    if stage == "copying":
        assert not pseudo.exists() and not record.exists()
    else:
        placed = sorted(p.name for p in pseudo.iterdir())
        assert placed == [f"new_{i}.png" for i in range(5)]
        assert sorted(json.loads(record.read_text())[0]["files"]) == [
            f"{NFD['red']}/pseudo-labels/{n}" for n in placed
        ]


def test_a_killed_runs_checkpoint_temp_files_are_removed_on_resume(tiny_backbone_file, tmp_path):
    data = make_colour_dataset(tmp_path / "data", per_class=10, seed=3)
    run = tmp_path / "run"
    args = ("train", str(data), "--backbone", str(tiny_backbone_file), "--out", str(run))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tlstudio", *args, "--batch-size", "4", "--fine-tune-epochs", "6"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    end = time.monotonic() + 300
    while not (run / "checkpoints" / "last.json").exists():
        assert time.monotonic() < end and proc.poll() is None, "no checkpoint"
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    checkpoints = run / "checkpoints"
    dead = checkpoints / f".tmp-{proc.pid}-7-last.weights.h5"  # as a kill mid-write leaves it
    dead.write_bytes(b"half a weights file")
    live = checkpoints / f".tmp-{os.getpid()}-0-other.h5"  # a live process's: not ours to remove
    live.write_bytes(b"being written")
    done = tlstudio("train", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert not dead.exists() and live.exists()
