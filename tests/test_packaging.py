"""A wheel built from a clean copy of the source installs (not editable) into a fresh environment,
and `tlstudio demo` runs there from a folder outside any checkout: the package data travels with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "tlstudio", "resources")


def build_wheel(out: Path) -> Path:
    """The wheel of a clean copy of the sources (setuptools' build/ folder would keep stale files)."""
    source = out / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    # offline: the build backend of this environment, no isolated build environment to download
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-build-isolation",
            "--no-deps",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("tlstudio-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_environment_and_the_demo_runs_from_any_folder(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "tlstudio/resources/sample_data/digits/3_three/digit_0003.png" in names
    assert "tlstudio/resources/desktop/tlstudio.desktop" in names
    assert "tlstudio/resources/icons/tlstudio-256.png" in names
    assert "tlstudio/core/backbone/backbone_table.json" in names
    assert "tlstudio/core/deploy/clients/predict_tflite.py" in names  # copied beside every export

    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # the dependencies (TensorFlow, Qt, …) come from this environment: reinstalling 2.5 GB is no test
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--force-reinstall",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import tlstudio.package_data as d; print(d.__file__); print(d.sample_dataset())",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
        env=clean,
    ).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # the installed copy, not this checkout

    done = subprocess.run(
        [str(env / "bin" / "tlstudio"), "demo", "--out", str(work / "run")],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
        env=clean,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "10 classes, 400 usable images" in done.stdout
    assert (work / "run" / "saved_model" / "saved_model.pb").is_file()
