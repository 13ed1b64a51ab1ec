"""The application menu entry (`tlstudio --install-desktop-entry`), the icon and the package data."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from tlstudio import desktop_entry
from tlstudio.cli import main
from tlstudio.package_data import ICON_SIZES, icon_file, resource, sample_dataset


def read_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def test_package_data_is_found_through_importlib_resources():
    digits = sample_dataset()
    assert sorted(p.name for p in digits.iterdir()) == [
        f"{i}_{n}"
        for i, n in enumerate(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        )
    ]
    assert sum(1 for _ in digits.glob("*/*.png")) == 400
    for size in ICON_SIZES:
        with Image.open(icon_file(size)) as image:
            assert image.size == (size, size) and image.mode == "RGBA"
    assert ET.parse(icon_file()).getroot().tag.endswith("svg")
    with pytest.raises(FileNotFoundError, match="reinstall"):
        resource("no", "such.file")


def test_install_writes_a_valid_entry_icons_and_file_type_then_uninstall_removes_them(tmp_path):
    home = tmp_path / "share"
    command = ["/opt/TL Studio 100%/tlstudio"]
    done = desktop_entry.install(home, command)
    planned = desktop_entry.planned_files(home)
    assert sorted(done.files) == sorted(planned) and all(p.is_file() for p in planned)
    assert not list(home.rglob("*.part"))

    entry = read_entry(home / "applications" / "tlstudio.desktop")
    assert entry["Type"] == "Application" and entry["Name"] == "TL Studio"
    assert entry["Exec"] == '"/opt/TL Studio 100%%/tlstudio" %f'  # quoted, % doubled, the file last
    assert entry["TryExec"] == command[0] and entry["Icon"] == "tlstudio"
    assert desktop_entry.MIME_TYPE in entry["MimeType"].split(";")
    if shutil.which("desktop-file-validate"):
        checked = subprocess.run(
            ["desktop-file-validate", str(home / "applications" / "tlstudio.desktop")],
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

    mime = ET.parse(home / "mime" / "packages" / "tlstudio.xml").getroot()
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    kind = mime.find("m:mime-type", ns)
    assert kind is not None and kind.get("type") == desktop_entry.MIME_TYPE
    assert [g.get("pattern") for g in kind.findall("m:glob", ns)] == ["*.tlstudio.json"]
    for size in ICON_SIZES:
        with Image.open(home / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "tlstudio.png") as im:
            assert im.size == (size, size)

    mine = home / "applications" / "other.desktop"
    mine.write_text("[Desktop Entry]\n")
    removed = desktop_entry.uninstall(home)
    assert sorted(removed.files) == sorted(planned) and not any(p.exists() for p in planned)
    assert mine.is_file()  # only TL Studio's own files go
    assert desktop_entry.uninstall(home).files == []


def test_exec_line_quotes_what_the_specification_reserves():
    assert desktop_entry.exec_line(["/usr/bin/tlstudio"]) == "/usr/bin/tlstudio %f"
    assert desktop_entry.exec_line(["/a b/python", "-m", "tlstudio"]) == '"/a b/python" -m tlstudio %f'
    assert desktop_entry.exec_line(['/x/"q"$`\\']) == '"/x/\\"q\\"\\$\\`\\\\" %f'


def test_the_launcher_is_this_environments_tlstudio(monkeypatch, tmp_path):
    command = desktop_entry.launcher()
    assert Path(command[0]).is_file()
    monkeypatch.setattr("sys.frozen", True, raising=False)
    monkeypatch.setattr("sys.executable", str(tmp_path / "bundle" / "tlstudio"))
    assert desktop_entry.launcher() == [str((tmp_path / "bundle" / "tlstudio").resolve())]


def test_cli_installs_into_xdg_data_home_and_uninstalls(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main(["--install-desktop-entry"]) == 0
    out = capsys.readouterr().out
    assert "application menu" in out and str(tmp_path) in out
    entry = read_entry(tmp_path / "applications" / "tlstudio.desktop")
    assert Path(entry["TryExec"]).is_file()
    assert main(["--uninstall-desktop-entry"]) == 0
    assert "removed" in capsys.readouterr().out
    assert not (tmp_path / "applications" / "tlstudio.desktop").exists()
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the spec: relative paths are invalid
    assert desktop_entry.data_home() == Path.home() / ".local" / "share"
