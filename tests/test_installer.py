"""installer/Dockerfile cannot be built here (no Docker daemon); check what can be checked without."""

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
