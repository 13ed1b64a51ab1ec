"""The manual in docs/ builds as a site with MkDocs (Material) in strict mode: a broken anchor, a page
left out of the navigation by mistake or a Markdown error fails the suite, not the published site."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_without_a_warning(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    # every page of the manual became a page of the site (docs/README.md is its home)
    expected = {"index.html"} | {
        f"{p.stem}/index.html" for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"
    }
    assert expected <= pages, expected - pages
