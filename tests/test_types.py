"""The type checker passes on the core (mypy, configured in pyproject.toml's [tool.mypy]: every function
body checked, the fully annotated modules kept so); and it does catch a type error with that set-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parents[1]


def mypy(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """``python -m mypy`` from the repository root with its config (a cold cache: ~8 s of CPU)."""
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    return subprocess.run(
        [*command, "--cache-dir", str(cache), *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_core_type_checks(tmp_path):
    out = mypy(cache=tmp_path / "cache")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout


def test_the_checker_catches_a_wrong_type(tmp_path):
    bad = tmp_path / "wrong.py"
    bad.write_text("def twice(n: int) -> int:\n    return n * 2\n\n\ntwice('2')\n")
    out = mypy(str(bad), cache=tmp_path / "cache")
    assert out.returncode == 1 and 'incompatible type "str"; expected "int"' in out.stdout


def test_the_session_keeps_the_contract_its_parts_rely_on(tmp_path):
    """``TrainingSession`` is a ``run_state.RunState``: a part's attribute renamed, dropped or retyped on
    the session fails here (the session's module is in the baseline, its parts take the protocol)."""
    check = tmp_path / "contract.py"
    check.write_text(
        "from tlstudio.core.training.run_state import RunState\n"
        "from tlstudio.core.training.session import TrainingSession\n\n\n"
        "def parts_see(session: TrainingSession) -> RunState:\n    return session\n"
    )
    out = mypy(str(check), cache=tmp_path / "cache")
    assert out.returncode == 0, out.stdout + out.stderr
    broken = tmp_path / "broken.py"
    broken.write_text(
        "from tlstudio.core.training.run_state import RunState\n\n\n"
        "class Half:\n    settings = None\n\n\n"
        "def parts_see(session: Half) -> RunState:\n    return session\n"
    )
    out = mypy(str(broken), cache=tmp_path / "cache")
    assert out.returncode == 1 and "RunState" in out.stdout, out.stdout
