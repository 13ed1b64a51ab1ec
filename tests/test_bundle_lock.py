"""installer/requirements.lock (written by installer/lock.sh) pins every package the bundle installs, at a
version pyproject.toml allows, and the build scripts install with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "installer"
LOCK = INSTALLER / "requirements.lock"
# the platforms the bundle is built on (build-linux.sh, build-macos.sh, build-windows.ps1)
PLATFORMS = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}


def locked() -> dict[str, list[Requirement]]:
    """The lock's pins by package name (a package may be pinned twice, under exclusive markers)."""
    pins: dict[str, list[Requirement]] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            pin = Requirement(line)
            pins.setdefault(canonicalize_name(pin.name), []).append(pin)
    return pins


def environments(python: str) -> list[dict[str, str]]:
    """Marker environments of each bundle platform at ``python`` (e.g. ``3.11``)."""
    base = default_environment()
    return [
        {**base, "sys_platform": sys, "platform_system": system, "python_version": python,
         "python_full_version": f"{python}.0"}
        for sys, system in PLATFORMS.items()
    ]  # fmt: skip


def version_for(pins: list[Requirement], env: dict[str, str]) -> str | None:
    """The version pinned for ``env`` (None: none of the pins' markers holds there)."""
    chosen = [p for p in pins if p.marker is None or p.marker.evaluate(env)]
    assert len(chosen) <= 1, f"{pins[0].name}: two pins hold at once"
    return str(next(iter(chosen[0].specifier)).version) if chosen else None


def bundle_requirements() -> list[Requirement]:
    """What the bundle installs: the core dependencies, the [export] extra, and PyInstaller."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    build = re.search(r'"(pyinstaller[^"]*)"', (INSTALLER / "build-linux.sh").read_text()).group(1)
    lines = [*project["dependencies"], *project["optional-dependencies"]["export"], build]
    return [Requirement(line) for line in lines]


def test_every_line_is_one_exact_pin():
    for pins in locked().values():
        for pin in pins:
            assert len(pin.specifier) == 1 and next(iter(pin.specifier)).operator == "==", str(pin)


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_every_dependency_of_the_bundle_is_pinned_where_it_applies_at_a_version_allowed(python):
    pins = locked()
    for env in environments(python):
        for requirement in bundle_requirements():
            if requirement.marker is not None and not requirement.marker.evaluate(env):
                continue
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{name} is not in {LOCK.name}: run installer/lock.sh"
            version = version_for(pins[name], env)
            assert version is not None, f"{name}: no pin for {env['sys_platform']} {python}"
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{name}=={version} is outside pyproject's {requirement.specifier}: run installer/lock.sh"
            )


def test_the_build_scripts_install_with_the_lock():
    for script in ("build-linux.sh", "build-macos.sh", "build-windows.ps1"):
        text = (INSTALLER / script).read_text(encoding="utf-8")
        installs = [line for line in text.splitlines() if "pip install" in line and "pyinstaller" in line]
        assert installs and all("requirements.lock" in line and " -c " in line for line in installs), script
    assert "uv pip compile" in (INSTALLER / "lock.sh").read_text(encoding="utf-8")
