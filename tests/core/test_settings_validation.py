"""Every TrainSettings field checked for its type and range where the settings are made, the project
file's reader refusing nesting and size that would crash it, the .keras zip-bomb check, and the exact
binomial test behind ``failed_to_learn``."""

from __future__ import annotations

import json
import math
import os
import zipfile

import pytest

from tlstudio.core.backbone.sources import model_file_problem, zip_bomb_problem
from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.project import Project
from tlstudio.core.results.metrics import within_chance
from tlstudio.core.settings import Augmentation, HeadSettings, TrainSettings, defaults


def test_defaults_and_every_sensible_value_are_accepted():
    s = defaults()
    assert TrainSettings.from_dict(s.to_dict()) == s
    TrainSettings(
        backbone="x",
        image_size=8,
        head=HeadSettings(dropout=0.0, dense_units=(1, 65_536)),
        freeze=FreezePlan("top", 3.0, block_lr=(("block_1", 0.1), ("block_2", 10.0)), lr_decay=1.0),
        learning_rate=10.0,
        batch_size=1,
        fine_tune_epochs=0,
        fine_tune_blocks=0,
        fine_tune_lr_decay=1.0,
        augmentation=Augmentation(rotation=1.0, zoom=0.5, contrast=1.0),
        seed=2**32 - 1,
        preprocessing="torch",
    )


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("dense_units", {"head": HeadSettings(dense_units=(-5,))}),
        ("dense_units", {"head": HeadSettings(dense_units=(True,))}),
        ("dropout", {"head": HeadSettings(dropout=math.nan)}),
        ("seed", {"seed": 2**70}),
        ("seed", {"seed": -1}),
        ("rotation", {"augmentation": Augmentation(rotation=1e9)}),
        ("zoom", {"augmentation": Augmentation(zoom=math.inf)}),
        ("contrast", {"augmentation": Augmentation(contrast=-1.0)}),
        ("image_size", {"image_size": 0}),
        ("image_size", {"image_size": -5}),
        ("image_size", {"image_size": 1_000_000}),
        ("batch_size", {"batch_size": 2**40}),
        ("fine_tune_blocks", {"fine_tune_blocks": -1}),
        ("fine_tune_lr_decay", {"fine_tune_lr_decay": math.nan}),
        ("learning_rate", {"learning_rate": 1e9}),
        ("value", {"freeze": FreezePlan("top", math.inf)}),
        ("value", {"freeze": FreezePlan("top", math.nan)}),
        ("block_lr", {"freeze": FreezePlan(block_lr=(("b", -1.0),))}),
        ("block_lr", {"freeze": FreezePlan(block_lr=(("b", math.inf),))}),
        ("block_lr", {"freeze": FreezePlan(block_lr=((3, 0.5),))}),
        ("block_lr", {"freeze": FreezePlan(block_lr=(("b", 0.5), ("b", 0.6)))}),
        ("device", {"device": "gpu:0\n"}),
        ("weights", {"weights": "imagenet\x00"}),
        ("calibrate", {"calibrate": "yes"}),
    ],
)
def test_out_of_range_values_are_refused_by_name(field, changes):
    with pytest.raises(ValueError, match=field) as err:
        TrainSettings(backbone="x", **changes)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_a_project_file_refuses_nesting_size_and_bad_fields_in_one_line(tmp_path):
    deep = tmp_path / "deep.tlstudio.json"
    deep.write_text('{"format": 1, "settings": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="nested too deeply"):
        Project.load(deep)
    huge = tmp_path / "huge.tlstudio.json"
    with open(huge, "wb") as f:
        f.truncate(10**9)  # sparse
    with pytest.raises(ValueError, match="MB"):
        Project.load(huge)
    boolean = tmp_path / "bool.tlstudio.json"
    boolean.write_text('{"format": true, "settings": {"backbone": "x"}}')
    with pytest.raises(ValueError, match="not a TL Studio project"):
        Project.load(boolean)
    bad = tmp_path / "bad.tlstudio.json"
    bad.write_text(json.dumps({"format": 1, "settings": {"backbone": "x", "head": {"dense_units": [-5]}}}))
    with pytest.raises(ValueError, match="dense_units") as err:
        Project.load(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    good = tmp_path / "good.tlstudio.json"
    Project(settings=defaults().but(backbone="x", seed=7)).save(good)
    assert Project.load(good).settings.seed == 7


def test_the_zip_check_passes_real_models_and_refuses_bombs(tmp_path):
    genuine = tmp_path / "genuine.keras"  # random float weights, deflated as a re-zipped file might be
    with zipfile.ZipFile(genuine, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", os.urandom(40 << 20))
    assert model_file_problem(genuine) is None
    zeros = tmp_path / "zeros.keras"
    with zipfile.ZipFile(zeros, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", bytes(40 << 20))
    assert "zip bomb" in model_file_problem(zeros)
    info = zipfile.ZipInfo("config.json")
    info.file_size, info.compress_size = 10**9, 10**9  # stored, but larger than any config
    assert "config.json" in zip_bomb_problem(tmp_path / "x.keras", [info])
    many = [zipfile.ZipInfo(f"m{i}") for i in range(10_001)]
    assert "files" in zip_bomb_problem(tmp_path / "x.keras", many)


@pytest.mark.parametrize(
    ("correct", "n", "counts", "chance_level"),
    [
        (9, 12, [6, 6], True),  # p = 0.073: the normal approximation called it better than chance
        (14, 20, [10, 10], True),  # p = 0.058: likewise
        (7, 12, [4, 4, 4], True),  # p = 0.066
        (10, 12, [6, 6], False),  # p = 0.019
        (15, 20, [10, 10], False),  # p = 0.021
        (12, 12, [12], True),  # one class: nothing to beat
    ],
)
def test_failed_to_learn_uses_the_exact_binomial_test(correct, n, counts, chance_level):
    assert within_chance(correct / n, n, counts) is chance_level


def test_the_preprocessing_modes_agree():
    from tlstudio.core.backbone.preprocessing import PREPROCESSING_MODES
    from tlstudio.core.settings import PREPROCESSING

    assert PREPROCESSING == PREPROCESSING_MODES


def test_within_chance_refuses_nothing_without_images():
    assert within_chance(0.0, 0, [3, 3]) is False and within_chance(0.5, 4, []) is False
