"""Atomic writes: a failed write leaves the old file and no temporary file behind."""

from __future__ import annotations

import json

import pytest

from tlstudio.core import atomic


def test_a_write_replaces_the_whole_file(tmp_path):
    target = tmp_path / "deep" / "x.json"
    atomic.write_json(target, {"a": 1, "path": tmp_path})
    assert json.loads(target.read_text()) == {"a": 1, "path": str(tmp_path)}
    atomic.write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.h5"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        assert tmp.suffix == ".h5" and tmp.parent == tmp_path  # writers that check the suffix accept it
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.h5"]


def test_two_writes_of_one_file_use_different_temporaries(tmp_path):
    with atomic.replacing(tmp_path / "f.txt") as first, atomic.replacing(tmp_path / "f.txt") as second:
        assert first != second
        first.write_text("1")
        second.write_text("2")
    assert (tmp_path / "f.txt").read_text() in ("1", "2")


def test_a_staging_folder_has_the_permissions_a_plain_folder_would(tmp_path):
    import os

    from tlstudio.core.atomic import staging_folder

    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain"
        plain.mkdir()
        staged = staging_folder(tmp_path, ".staging-")
    finally:
        os.umask(old)
    assert staged.name.startswith(".staging-") and staged.is_dir()
    assert staged.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
