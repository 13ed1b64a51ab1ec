"""`tlstudio weights`: names the file, installs a checked local copy, refuses a wrong one."""

from __future__ import annotations

import pytest

from tlstudio.cli import main


def test_weights_names_the_file_and_checks_a_local_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert main(["weights", "MobileNetV3Small", "--url"]) == 0
    url, target = capsys.readouterr().out.strip().splitlines()
    assert url.startswith("https://") and target.startswith(f"-> {tmp_path / 'keras' / 'models'}")
    wrong = tmp_path / "wrong.h5"
    wrong.write_bytes(b"not the weights")
    assert main(["weights", "MobileNetV3Small", "--from", str(wrong)]) == 1
    assert "checksum differs" in capsys.readouterr().err
    assert not list((tmp_path / "keras" / "models").glob("*.h5"))
    assert main(["weights", "NoSuchNet"]) == 2
    assert "not a Keras Applications model" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["weights"], ["weights", "--help"]])
def test_weights_usage(args, capsys):
    with pytest.raises(SystemExit):
        main(args)
