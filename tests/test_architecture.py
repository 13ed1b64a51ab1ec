"""The core stays headless: no Qt anywhere under tlstudio/core."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import tlstudio.core

CORE = Path(tlstudio.core.__file__).parent
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "matplotlib.backends.backend_qt")


def test_core_sources_never_import_qt():
    for source in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(QT_MODULES), f"{source.name} imports {name}"


def test_the_window_module_loads_no_tensorflow():
    """The window must show in about a second: TensorFlow (about 5 s) loads after, in a worker, and
    NumPy (0.2-0.4 s of the window's start-up when it was imported with it) when a view first needs it."""
    heavy = "{'tensorflow', 'keras', 'numpy', 'matplotlib', 'scipy'}"
    code = f"import sys, tlstudio.gui.main_window; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_every_core_module_loads_no_qt():
    modules = [m.name for m in pkgutil.walk_packages([str(CORE)], "tlstudio.core.")]
    assert modules, "no core modules found"
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print([m for m in sys.modules if m.startswith({QT_MODULES!r})])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_import_contracts_hold():
    """import-linter's contracts in pyproject.toml: core ↛ gui/cli/Qt; gui and cli hold no ML of their own."""
    root = Path(__file__).resolve().parent.parent
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_window_is_built_and_shown_without_numpy(tmp_path):
    """Building and showing the window (every panel, before the first paint) imports no NumPy."""
    code = (
        "import sys\n"
        "from PySide6.QtCore import QSettings\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from tlstudio.gui.main_window import MainWindow\n"
        f"w = MainWindow(QSettings({str(tmp_path / 's.ini')!r}, QSettings.Format.IniFormat))\n"
        "w.show()\n"
        "print(sorted({'tensorflow', 'keras', 'numpy', 'matplotlib', 'scipy'} & set(sys.modules)))\n"
    )
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
