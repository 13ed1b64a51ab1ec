"""The small-folder rule: validation too small to choose anything trains too, said and recorded."""

from __future__ import annotations

import doctest
import json

import pytest
from factory import make_colour_dataset

from tlstudio.core import events as ev
from tlstudio.core.data.split import Manifest, ManifestEntry
from tlstudio.core.settings import SMALL_VAL_PER_CLASS, Augmentation, TrainSettings
from tlstudio.core.training import small_folder
from tlstudio.core.training.small_folder import apply_small_folder_rule


def manifest(per_class: int, val_per_class: int, classes: str = "abc") -> Manifest:
    entries = []
    for c in classes:
        for i in range(per_class):
            split = "test" if i == 0 else "val" if i <= val_per_class else "train"
            entries.append(ManifestEntry(f"{c}/{i}.png", f"{c}{i}", c, split))
    return Manifest(tuple(entries))


def test_validation_of_fewer_than_the_rule_a_class_trains_and_test_stays():
    given = manifest(8, SMALL_VAL_PER_CLASS - 1)
    moved, why = apply_small_folder_rule(given, TrainSettings(backbone="MobileNetV2"))
    assert moved.subset("val") == [] and moved.subset("test") == given.subset("test")
    assert len(moved.subset("train")) == len(given.subset("train")) + len(given.subset("val"))
    assert "3 validation images" in why and "--small-folder-val keep" in why


def test_enough_validation_asked_to_keep_or_multi_label_is_left_as_it_is():
    enough = manifest(20, SMALL_VAL_PER_CLASS)
    assert apply_small_folder_rule(enough, TrainSettings(backbone="MobileNetV2")) == (enough, None)
    small = manifest(8, 1)
    assert apply_small_folder_rule(small, TrainSettings(backbone="MobileNetV2", small_folder_val="keep")) == (
        small,
        None,
    )
    multi = Manifest(small.entries, multi_label=True)
    assert apply_small_folder_rule(multi, TrainSettings(backbone="MobileNetV2"))[1] is None
    with pytest.raises(ValueError, match="small_folder_val"):
        TrainSettings(backbone="MobileNetV2", small_folder_val="sometimes")


def test_the_example_in_the_docstring_holds():
    assert doctest.testmod(small_folder, extraglobs={"ManifestEntry": ManifestEntry}).failed == 0


@pytest.mark.slow
def test_a_small_folder_run_trains_on_validation_says_so_and_records_it(tmp_path, tiny_backbone_file):
    from tlstudio.core.training.session import TrainingSession

    data = make_colour_dataset(tmp_path / "data", per_class=7)
    s = TrainSettings(
        backbone=str(tiny_backbone_file),
        fine_tune_epochs=1,
        batch_size=8,
        augmentation=Augmentation(False, 0.0),
    )
    said = []
    result = TrainingSession(s, data, tmp_path / "run", on_event=said.append).run()
    assert result.status == "completed", result.error
    reasons = [e.reason for e in said if isinstance(e, ev.RecipeChanged)]
    assert any(r.startswith("a small folder") for r in reasons)
    assert not any("in the val split" in r for r in reasons)  # emptied on purpose: not a warning
    run = Manifest.load(tmp_path / "run" / "manifest.csv")
    assert run.subset("val") == [] and len(run.subset("test")) == 3  # 1 a class held out for the figure
    started = next(e for e in said if isinstance(e, ev.RunStarted))
    assert (started.val_images, started.train_images) == (0, 18)
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())
    assert recorded["small_folder"].startswith("a small folder")
    kept = TrainingSession(
        TrainSettings(**{**s.__dict__, "small_folder_val": "keep"}), data, tmp_path / "kept"
    ).run()
    assert kept.status == "completed" and Manifest.load(tmp_path / "kept" / "manifest.csv").subset("val")
