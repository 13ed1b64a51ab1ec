"""Relabelling from the error gallery: the file and its manifest entry move together, and back."""

from __future__ import annotations

import pytest
from factory import make_colour_dataset

from tlstudio.core.data.health import inspect_folder
from tlstudio.core.data.relabel import RelabelError, copy_into_class, move_to_class, remove_copy, undo
from tlstudio.core.data.split import Manifest, SplitConfig, make_split


@pytest.fixture
def data(tmp_path):
    root = make_colour_dataset(tmp_path / "data", per_class=6)
    manifest = make_split(inspect_folder(root).images, SplitConfig(0.2, 0.2, 0))
    path = manifest.save(tmp_path / "manifest.csv")
    return root, manifest, path


def test_a_move_keeps_the_hash_and_split_and_undo_restores_both(data):
    root, manifest, path = data
    entry = next(e for e in manifest.entries if e.label == "red" and e.split == "test")
    move, updated = move_to_class(root, entry.path, "green", manifest=manifest, manifest_path=path)
    assert not (root / entry.path).exists() and (root / move.new_path).is_file()
    moved = next(e for e in updated.entries if e.path == move.new_path)
    assert (moved.label, moved.split, moved.sha256) == ("green", "test", entry.sha256)  # no leak to train
    assert Manifest.load(path) == updated
    restored = undo(root, move, manifest=updated, manifest_path=path)
    assert (root / entry.path).is_file() and restored == manifest and Manifest.load(path) == manifest


def test_a_taken_name_gets_a_free_one_and_refusals_say_why(data):
    root, _, _ = data
    red = sorted((root / "red").iterdir())[0]
    (root / "green" / red.name).write_bytes(b"occupied")
    move, none = move_to_class(root, f"red/{red.name}", "green")
    assert none is None and move.new_path == f"green/{red.stem}-1{red.suffix}"
    with pytest.raises(RelabelError, match="already in green"):
        move_to_class(root, move.new_path, "green")
    with pytest.raises(RelabelError, match="not in"):
        move_to_class(root, "red/gone.png", "blue")
    (root / move.old_path).write_bytes(b"new file in the old place")
    with pytest.raises(RelabelError, match="exists again"):
        undo(root, move)


def test_copy_into_class_keeps_the_original_picks_a_free_name_and_undoes_only_its_own_copy(tmp_path):
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "new.png").write_bytes(b"older")
    source = tmp_path / "inbox" / "new.png"
    source.parent.mkdir()
    source.write_bytes(b"pixels")
    assert copy_into_class(data, source, "cat") == "cat/new-1.png"
    assert copy_into_class(data, source, "dog") == "dog/new.png"
    assert source.read_bytes() == b"pixels" and (data / "dog" / "new.png").read_bytes() == b"pixels"
    for bad in ("", "..", "a/b"):
        with pytest.raises(RelabelError):
            copy_into_class(data, source, bad)
    (data / "dog" / "new.png").write_bytes(b"edited since")
    with pytest.raises(RelabelError, match="changed"):
        remove_copy(data, "dog/new.png", source)
    remove_copy(data, "cat/new-1.png", source)
    assert not (data / "cat" / "new-1.png").exists() and (data / "cat" / "new.png").read_bytes() == b"older"
