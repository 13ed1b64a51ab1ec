"""The vocabularies (``core/vocabulary.py``): the settings accept every word of theirs and refuse any
other, by the field's name; and every run status the code writes or compares is a word of ``RunStatus``."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import get_args

import pytest

from tlstudio.core import vocabulary
from tlstudio.core.settings import TrainSettings

ROOT = Path(vocabulary.__file__).resolve().parents[1]
TYPED = {
    f.name: f.type for f in fields(TrainSettings) if str(f.type).split(" |")[0] in vocabulary.SETTINGS_TYPES
}


def test_the_settings_fields_typed_by_a_vocabulary():
    assert set(TYPED) == {
        "optimizer",
        "class_weights",
        "strategy",
        "mixed_precision",
        "preprocessing",
        "small_folder_val",
        "peft",
        "probe_features",
    }


@pytest.mark.parametrize("name", sorted(TYPED))
def test_every_word_is_accepted_and_any_other_refused(name):
    words = get_args(getattr(vocabulary, str(TYPED[name]).split(" |")[0]))
    assert words and all(isinstance(w, str) for w in words)
    for word in words:
        assert getattr(TrainSettings(backbone="x", **{name: word}), name) == word
    with pytest.raises(ValueError, match=name.replace("_", "[_ ]")):
        TrainSettings(backbone="x", **{name: "no-such-word"})
    with pytest.raises(ValueError, match=f"settings.{name} must be"):  # a project file's wrong type
        TrainSettings.from_dict({**TrainSettings(backbone="x").to_dict(), name: 3})


def test_every_run_status_in_the_code_is_a_word_of_the_vocabulary():
    patterns = (
        r"status\"?\)? *[!=]= *\"(\w+)\"",  # status == "completed", run["status"] != "failed"
        r"\"status\": \"(\w+)\"",
        r"RunResult\(\"(\w+)\"",
        r"record_run\([^,]+, \"(\w+)\"",
    )
    found: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        if path.name == "weights.py" and path.parent.name == "cli":  # a download's status, not a run's
            continue
        text = path.read_text(encoding="utf-8")
        words = {w for p in patterns for w in re.findall(p, text)}
        for group in re.findall(r"status in \(([^)]*)\)", text):
            words |= set(re.findall(r"\"(\w+)\"", group))
        for word in words:
            found.setdefault(word, set()).add(str(path.relative_to(ROOT)))
    assert {"completed", "running", "failed_to_learn"} <= set(found)  # the scan finds them
    strays = {w: sorted(p) for w, p in found.items() if w not in vocabulary.RUN_STATUSES}
    assert not strays, f"run statuses outside vocabulary.RunStatus: {strays}"
