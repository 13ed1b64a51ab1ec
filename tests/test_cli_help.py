"""`tlstudio --help` and every command's help load no numerical or GUI library: they stay a fraction
of a second (the heavy work imports them inside the command)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "PIL", "tensorflow", "keras", "keras_hub", "PySide6", "matplotlib", "scipy", "sklearn")


def loaded_after(code: str) -> list[str]:
    """The heavy modules loaded after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_parser_and_printing_help_loads_no_heavy_module():
    code = (
        "import contextlib, io\n"
        "from tlstudio.cli import build_parser, main\n"
        "parser = build_parser()\n"
        "commands = sorted(parser._subparsers._group_actions[0].choices)\n"
        "for argv in [['--help']] + [[c, '--help'] for c in commands]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
    )
    assert loaded_after(code) == []


def test_the_probe_sees_a_heavy_import():  # the test above could not pass by a broken probe
    assert loaded_after("import numpy") == ["numpy"]


def test_tlstudio_help_as_a_program():
    out = subprocess.run(
        [sys.executable, "-m", "tlstudio", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.startswith("usage: tlstudio") and "train" in out.stdout
