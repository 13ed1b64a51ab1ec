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


def test_weights_json_says_where_the_file_is_and_what_happened(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert main(["weights", "MobileNetV3Small", "--url", "--json"]) == 0
    told = json.loads(capsys.readouterr().out)
    assert told["status"] == "not fetched" and told["url"].startswith("https://")
    assert told["path"].startswith(str(tmp_path / "keras" / "models")) and told["name"].endswith(".h5")
    # a copy that checks out (Keras' real file is 4 MB from the network: its hash check is stood in for)
    monkeypatch.setattr("tlstudio.core.backbone.weights.file_digest", lambda file, like: like)
    local = tmp_path / "copy.h5"
    local.write_bytes(b"weights")
    assert main(["weights", "MobileNetV3Small", "--from", str(local), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {**told, "status": "installed"}
    assert main(["weights", "MobileNetV3Small", "--json"]) == 0  # now in the cache: nothing to fetch
    assert json.loads(capsys.readouterr().out) == {**told, "status": "cached"}
    assert main(["weights", "MobileNetV3Small", "--url", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cached"
