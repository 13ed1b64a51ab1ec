"""One module owns every run-folder file name: the others use its constants, so they cannot drift."""

from __future__ import annotations

import ast
from pathlib import Path

import tlstudio
from tlstudio.core.results import run_folder

PACKAGE = Path(tlstudio.__file__).parent
NAMES = {
    value
    for key, value in vars(run_folder).items()
    if key.isupper()
    and isinstance(value, str)
    and ("." in value or value == "checkpoints")  # "export" is also a command
}
# The same name for another folder's file, declared once: a KerasHub preset folder's metadata, the
# files zipped inside a .tflite (its TFLite metadata), a TF.js graph model's model.json.
ELSEWHERE = {
    ("core/backbone/kerashub.py", "PRESET_METADATA"),
    ("core/backbone/sources.py", "KERAS_METADATA"),
    ("core/deploy/tflite_metadata.py", "LABELS_FILE"),
    ("core/deploy/tflite_metadata.py", "THRESHOLDS_FILE"),
    ("core/deploy/runtime_check.py", "PACKED_THRESHOLDS"),
    ("core/deploy/tfjs_format.py", "MODEL_FILE"),
}
# The sample clients are copied beside an export and run alone (their runtime, Pillow, NumPy): they
# cannot import TL Studio, so they spell the export folder's names themselves.
STANDALONE = "core/deploy/clients/*.py"


def test_the_names_are_all_there():
    assert {
        "run.json",
        "model.keras",
        "metadata.json",
        "settings.json",
        "manifest.csv",
        "history.json",
    } <= NAMES
    assert {"best.weights.h5", "last.weights.h5", "labels.txt", "evaluation.json", "report.html"} <= NAMES


def test_no_other_module_spells_a_run_folder_file_name():
    spelled = []
    for source in PACKAGE.rglob("*.py"):
        if source == Path(run_folder.__file__) or source.match(STANDALONE):
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        declared = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets]
            in ([n] for f, n in ELSEWHERE if source.match(f))
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in NAMES and id(node) not in declared:
                spelled.append(f"{source.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert not spelled, "use the constants of core/results/run_folder.py: " + ", ".join(spelled)
