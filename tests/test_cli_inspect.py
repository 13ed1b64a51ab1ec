"""`tlstudio inspect` and `tlstudio demo`, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from factory import encode, make_class_folder, pattern, write
from PIL import Image

from tlstudio.cli import main
from tlstudio.core.data.split import Manifest


def test_inspect_json_end_to_end_in_a_real_process(tmp_path):
    make_class_folder(tmp_path, "ants", 6)
    make_class_folder(tmp_path, "bees", 4, seed=1)
    write(tmp_path / "bees" / "broken.jpg", b"<html>oops</html>")
    out = subprocess.run(
        [sys.executable, "-m", "tlstudio", "inspect", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["classes"] == {"ants": 6, "bees": 4}
    assert data["skipped"] == [
        {"path": "bees/broken.jpg", "reason": "not an image (named .jpg): an HTML page"}
    ]
    assert isinstance(data["warnings"], list) and data["duplicates"] == []


def test_inspect_text_and_manifest(tmp_path, capsys):
    make_class_folder(tmp_path / "d", "x", 10)
    make_class_folder(tmp_path / "d", "y", 10, seed=1)
    assert main(["inspect", str(tmp_path / "d"), "--manifest", str(tmp_path / "m.csv"), "--seed", "7"]) == 0
    text = capsys.readouterr().out
    assert "2 classes, 20 usable images, 0 skipped" in text
    assert "Usable: yes" in text
    manifest = Manifest.load(tmp_path / "m.csv")
    assert len(manifest.entries) == 20
    assert manifest.counts()["test"] == {"x": 2, "y": 2}


def test_inspect_unusable_folder_exits_non_zero_with_a_reason(tmp_path, capsys):
    make_class_folder(tmp_path, "only", 3)
    assert main(["inspect", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["usable"] is False
    assert captured.err.strip().splitlines() == [
        "tlstudio inspect: not usable: found 1 class folder(s) with usable images; at least two are needed "
        "(one sub-folder per class)"
    ]


def test_inspect_missing_folder(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_inspect_json_survives_undecodable_names(tmp_path, capsys):
    import os

    make_class_folder(tmp_path, "a", 2)
    make_class_folder(tmp_path, "b", 2, seed=1)
    with open(os.path.join(os.fsencode(tmp_path / "b"), b"\xff\xfe.jpg"), "wb") as fh:
        fh.write(encode(pattern(seed=5), "JPEG"))
    with open(os.path.join(os.fsencode(tmp_path / "b"), b"bad\xff.txt"), "wb") as fh:
        fh.write(b"text")
    assert main(["inspect", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["classes"] == {"a": 2, "b": 3}
    assert len(data["skipped"]) == 1


def test_demo_runs_on_the_bundled_sample(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "10 classes, 400 usable images, 0 skipped" in text
    assert (tmp_path / "manifest.csv").is_file()  # the run's own copy of its split
    assert main(["demo", "--out", str(tmp_path)]) == 0  # a second demo replaces the first
    assert (tmp_path / "saved_model" / "saved_model.pb").is_file()


def test_help_is_fast_to_import():
    code = (
        "import sys, tlstudio.cli\n"
        "print(sorted(m for m in ('tensorflow', 'PIL', 'PySide6') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_a_display_the_app_says_so_and_points_at_the_cli():
    import os
    import subprocess
    import sys

    from tlstudio.gui.display_check import display_problem

    assert display_problem({}, "linux") and display_problem({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "win32") is None
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    for extra in ({}, {"QT_QPA_PLATFORM": "xcb"}, {"DISPLAY": ":87"}, {"WAYLAND_DISPLAY": "wayland-87"}):
        command = [sys.executable, "-m", "tlstudio"]  # no X server on :87: Qt would abort (signal 6)
        done = subprocess.run(command, capture_output=True, text=True, env={**env, **extra}, timeout=60)
        assert done.returncode == 2, (extra, done.returncode, done.stderr[-500:])
        assert "QT_QPA_PLATFORM=offscreen" in done.stderr and "Reinstalling" not in done.stderr


def test_a_display_counts_only_when_a_server_answers_there(tmp_path):
    import socket

    from tlstudio.gui.display_check import display_problem, x_server_answers

    with socket.socket() as server:  # an "X server" on TCP display 10 (port 6010), as ssh -X makes
        server.bind(("127.0.0.1", 6010))
        server.listen(4)  # connections wait in its backlog: connecting is all the check does
        assert x_server_answers("127.0.0.1:10.0")
        assert display_problem({"DISPLAY": "127.0.0.1:10.0"}, "linux") is None
    assert not x_server_answers("127.0.0.1:10.0")
    message = display_problem({"DISPLAY": ":87", "QT_QPA_PLATFORM": "xcb"}, "linux")
    assert message and "no display answers at DISPLAY=:87" in message
    wayland = tmp_path / "wayland-1"  # a compositor's socket in XDG_RUNTIME_DIR
    with socket.socket(socket.AF_UNIX) as compositor:
        compositor.bind(str(wayland))
        compositor.listen()
        env = {"WAYLAND_DISPLAY": "wayland-1", "XDG_RUNTIME_DIR": str(tmp_path)}
        assert display_problem(env, "linux") is None
        assert display_problem({**env, "QT_QPA_PLATFORM": "xcb"}, "linux")  # X asked for, none there


def test_label_issues_need_a_backbone_and_come_in_the_json(colour_data, tiny_backbone_file, tmp_path, capsys):
    import shutil

    assert main(["inspect", str(colour_data), "--label-issues"]) == 2
    assert "needs --backbone" in capsys.readouterr().err
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    wrong = next(iter(sorted((data / "red").glob("*"))))
    wrong.rename(data / "blue" / f"was_red_{wrong.name}")  # a red image labelled blue
    # a black frame: nothing this colour backbone responds to (a chessboard or grey it sees as colours)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(data / "green" / "black_frame.png")
    assert (
        main(["inspect", str(data), "--label-issues", "--backbone", str(tiny_backbone_file), "--json"]) == 0
    )
    found = json.loads(capsys.readouterr().out)
    issues = {i["path"]: i for i in found["label_issues"][:2]}  # the black frame may look like no colour
    flipped = issues[f"blue/was_red_{wrong.name}"]
    assert [o["path"] for o in found["outliers"]] == ["green/black_frame.png"]
    assert flipped["given"] == "blue" and flipped["suggested"] == "red"
    assert set(flipped) == {"path", "given", "suggested", "confidence", "given_probability", "confident"}
    assert main(["inspect", str(data), "--label-issues", "--backbone", str(tiny_backbone_file)]) == 0
    text = capsys.readouterr().out
    assert f"blue/was_red_{wrong.name}: labelled blue, looks like red" in text
    assert "Off-distribution images: 1" in text and "green/black_frame.png (green)" in text


def test_a_path_that_cannot_be_written_or_a_foreign_run_record_gets_one_line(colour_data, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    assert main(["inspect", str(colour_data), "--manifest", str(tmp_path / "a_file" / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tlstudio inspect: File exists") and "Traceback" not in err
    odd = tmp_path / "runs" / "odd"
    odd.mkdir(parents=True)
    (odd / "run.json").write_text("[1, 2]")  # valid JSON, but not a run's record
    assert main(["runs", str(tmp_path / "runs")]) == 0
    assert "unknown" in capsys.readouterr().out
