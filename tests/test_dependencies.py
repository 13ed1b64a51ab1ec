"""The declared dependencies match what the code imports: Qt from the essentials wheel only, and an
upper bound on every package whose private modules (``keras.src``, ``keras_hub.src``) are imported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
# the Qt modules of the pyside6-essentials wheel (6.12; the same set since 6.6 for those used here)
ESSENTIALS = {
    "QtConcurrent", "QtCore", "QtDBus", "QtDesigner", "QtGui", "QtHelp", "QtNetwork", "QtOpenGL",
    "QtOpenGLWidgets", "QtPrintSupport", "QtQml", "QtQuick", "QtQuickControls2", "QtQuickTest",
    "QtQuickWidgets", "QtSql", "QtSvg", "QtSvgWidgets", "QtTest", "QtUiTools", "QtWidgets", "QtXml",
}  # fmt: skip
SOURCES = [p for d in ("tlstudio", "tools", "benchmarks", "installer") for p in (ROOT / d).rglob("*.py")]


def requirements(*extras: str) -> dict[str, Requirement]:
    """The project's requirements (core, and the named extras) by normalised name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return {(r := Requirement(line)).name.lower().replace("_", "-"): r for line in lines}


def imported(pattern: str) -> set[str]:
    """What the sources import that matches ``pattern`` (one group: the name wanted)."""
    return {m for p in SOURCES for m in re.findall(pattern, p.read_text(encoding="utf-8"), re.M)}


def test_qt_comes_from_the_essentials_wheel_only():
    core = requirements()
    assert "pyside6-essentials" in core and "pyside6" not in core
    used = imported(r"^\s*(?:from|import) PySide6\.(Qt\w+)")
    assert {"QtCore", "QtGui", "QtWidgets"} <= used  # the scan finds the imports
    assert used <= ESSENTIALS, (
        f"needs a PySide6 add-on (an extra, not a core dependency): {used - ESSENTIALS}"
    )


@pytest.mark.parametrize(
    ("module", "package", "extra"), [("keras", "keras", None), ("keras_hub", "keras-hub", "kerashub")]
)
def test_private_imports_come_with_an_upper_bound(module, package, extra):
    assert imported(rf"^\s*(?:from|import) ({module})\.src\b"), f"no {module}.src import left: drop this test"
    requirement = requirements(*([extra] if extra else []))[package]
    assert any(spec.operator in ("<", "~=", "==") for spec in requirement.specifier), (
        f"{package} is imported by private path but has no upper bound: {requirement}"
    )


def test_tensorboard_extra_holds_the_viewer():
    assert "tensorboard" in requirements("tensorboard")
