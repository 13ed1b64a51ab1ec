"""The installer folder: the Dockerfile (not buildable here: no Docker daemon), the bundle's entry
point and build files (the bundle itself is built by installer/build-linux.sh, not by the tests)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "installer" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    rows = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in rows if line and not line.startswith("#")]


def test_dockerfile_copies_files_that_exist_and_runs_the_cli():
    rows = instructions()
    assert rows[0][0] == "FROM"
    copied = [args.split()[:-1] for name, args in rows if name == "COPY"]
    sources = [source for group in copied for source in group]
    assert sources and all((ROOT / source).exists() for source in sources), sources
    scripts = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("[")[0]
    entrypoint = json.loads(dict(rows)["ENTRYPOINT"])
    assert entrypoint == ["tlstudio"] and re.search(r"^tlstudio = ", scripts, re.M)


def test_dockerfile_has_no_trailing_comments():
    """Docker reads `FROM image  # note` as arguments: comments must be lines of their own."""
    for name, args in instructions():
        assert "#" not in args.split('"')[0], f"{name} {args}"


def test_the_bundle_entry_point_answers_dash_m_like_python(tmp_path):
    """In a bundle `sys.executable` is TL Studio itself; exports are checked by `sys.executable -m …`."""
    import subprocess
    import sys

    data = tmp_path / "x.json"
    data.write_text('{"b": 1, "a": [2]}')
    entry = ROOT / "installer" / "entry.py"
    done = subprocess.run(
        [sys.executable, str(entry), "-m", "json.tool", "--sort-keys", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and json.loads(done.stdout) == {"a": [2], "b": 1}
    version = subprocess.run([sys.executable, str(entry), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("tlstudio ")


def test_the_build_scripts_and_spec_name_files_that_exist():
    spec = (ROOT / "installer" / "tlstudio.spec").read_text()
    assert '"entry.py"' in spec and 'collect_data_files("tlstudio")' in spec
    for script in ("build-linux.sh", "check-linux.sh", "build-macos.sh", "build-windows.ps1"):
        text = (ROOT / "installer" / script).read_text()
        assert "tlstudio.spec" in text or script == "check-linux.sh", script
    for name in ("tlstudio.ico", "tlstudio.icns", "tlstudio.svg"):
        assert (ROOT / "resources" / "icons" / name).is_file()
