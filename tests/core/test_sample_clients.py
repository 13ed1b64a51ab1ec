"""The sample client beside each artefact (``predict_<format>.py IMAGE``) classifies real image files in a
fresh process with that runtime alone, as the export's own check does; Core ML (and TF.js without
Node.js) are refused before any work, and ``--format all`` lists them as skipped with the reason."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tlstudio.core.data.pipeline import load_for_model
from tlstudio.core.deploy import runtime_check
from tlstudio.core.deploy.format_list import CHOICES, TFJS_EVIDENCE, UNAVAILABLE, unavailable
from tlstudio.core.deploy.formats import FILE_NAMES, export_format
from tlstudio.core.deploy.sample_clients import CLIENTS

CLIENT_FORMATS = ("saved_model", "tflite", "onnx", "openvino")


@pytest.fixture(scope="module")
def images(probe_run, colour_data, tmp_path_factory):
    """Test-split PNGs of the run (the model's size), and a larger JPEG stored sideways (EXIF 6)."""
    from tlstudio.core.data.split import Manifest

    entries = Manifest.load(probe_run / "manifest.csv").subset("test")[:3]
    files = [colour_data / e.path for e in entries]
    big = tmp_path_factory.mktemp("client-images") / "sideways.jpg"
    upright = Image.open(files[0]).convert("RGB").resize((96, 72), Image.Resampling.NEAREST)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: readers turn it 90° clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(big, quality=95, exif=exif)
    return [*files, big]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", CLIENT_FORMATS)
def test_each_client_gives_the_top_class_its_runtime_gives(fmt, probe_run, images, tmp_path):
    module = {"onnx": "onnxruntime", "openvino": "openvino"}.get(fmt)
    if module and importlib.util.find_spec(module) is None:  # not imported here: openvino's telemetry
        pytest.skip(f"{module} is not installed")
    folder = tmp_path / fmt
    export_format(probe_run, fmt, out=folder)
    client = folder / CLIENTS[fmt]
    described = json.loads((folder / "model.json").read_text())
    assert client.is_file() and described["client"].startswith(client.name)
    labels = (probe_run / "labels.txt").read_text().splitlines()
    run = runtime_check.RUNNERS[fmt](str(folder / FILE_NAMES[fmt]))
    done = subprocess.run(  # from another folder: the client finds its model beside itself
        [sys.executable, str(client), *map(str, images), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.strip().splitlines() if line.startswith("{")]
    assert [line["image"] for line in lines] == [str(image) for image in images]
    for image, said in zip(images, lines, strict=True):
        checked = run(load_for_model(image, 32)[None].astype(np.float32))[0]  # as the export's check feeds it
        assert said["label"] == labels[int(checked.argmax())], (fmt, image.name)
        got = np.asarray([said["probabilities"][label] for label in labels])
        assert got.argmax() == checked.argmax() and abs(got.sum() - 1) < 1e-3
        if image.suffix == ".png":  # the model's size, lossless: the same pixels, the same numbers
            assert np.abs(got - checked).max() < 1e-4, (fmt, image.name)
    if fmt in ("tflite", "onnx"):  # the plain output: the top classes, one a line
        command = [sys.executable, str(client), str(images[0]), "--top", "2"]
        text = subprocess.run(command, capture_output=True, text=True, timeout=300).stdout.strip()
        assert len(text.splitlines()) == 2 and text.splitlines()[0].split("\t")[0] in labels


def test_what_cannot_be_made_here_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from tlstudio.cli import export as command
    from tlstudio.cli import main
    from tlstudio.core.deploy import tfjs_format

    monkeypatch.setattr(command, "quiet_tensorflow", lambda: pytest.fail("refused too late"))
    monkeypatch.setattr(tfjs_format.shutil, "which", lambda name: None)  # a machine without Node.js
    for fmt in UNAVAILABLE:
        assert main(["export", str(tmp_path / "no-such-run"), "--format", fmt]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{fmt}:" in err, err
    assert not list(tmp_path.iterdir())


def test_the_reasons_name_why(capsys):
    assert "only be verified on macOS" in unavailable("coreml", system="Linux")
    assert "runs Windows" in unavailable("coreml", system="Windows")
    assert "not in this build" in unavailable("coreml", system="Darwin")
    assert "tensorflow-decision-forests" in TFJS_EVIDENCE and "tensorflow==2.19.0" in TFJS_EVIDENCE
    assert unavailable("tflite") is None and unavailable("onnx") is None
    shown = {fmt for _, fmt, _ in CHOICES}
    assert set(UNAVAILABLE) <= shown and set(CLIENTS) <= shown  # the app lists what the CLI knows

    from tlstudio.cli.export import print_table
    from tlstudio.core.deploy.formats import DeployResult

    print_table([DeployResult("coreml", "float32", None, None, skipped=unavailable("coreml"))])
    assert "skipped: coreml: a Core ML model" in capsys.readouterr().out  # the table says why
