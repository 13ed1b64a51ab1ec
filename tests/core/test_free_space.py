"""The free-space guard before a run's export asks what the export takes (the weights twice and the
graph), not five times as much, and says what helps: exporting again, not resuming."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from tlstudio.core.training import failures
from tlstudio.core.training.failures import TrainingError, need_free_space

Usage = namedtuple("Usage", "total used free")


def test_the_guard_names_the_room_missing_and_the_advice_given(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda _: Usage(10**9, 10**9 - 3_000_000, 3_000_000))
    need_free_space(tmp_path, 2_900_000, "the export", "export it again")  # room enough: nothing said
    with pytest.raises(TrainingError) as err:
        need_free_space(tmp_path, 4_000_000, "the export", "export it again")
    assert "about 4.0 MB needed, 3.0 MB free. export it again" in str(err.value)
    with pytest.raises(TrainingError, match="resume or start again"):
        need_free_space(tmp_path, 4_000_000, "a checkpoint")


def test_the_export_estimate_is_near_what_an_export_takes(probe_run):
    import keras

    model = keras.models.load_model(probe_run / "model.keras", compile=False)
    estimate = failures.weights_bytes(model) * 2 + 4 * 2**20
    taken = sum(p.stat().st_size for p in (probe_run / "saved_model").rglob("*") if p.is_file())
    taken += (probe_run / "model.keras").stat().st_size
    assert taken < estimate < taken + 8 * 2**20  # enough, and not five times too much
