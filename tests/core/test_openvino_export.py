"""OpenVINO IR export (float32, and int8 by NNCF's accuracy control): converted from the run, checked
by the OpenVINO runtime alone in a fresh process, put in place atomically (a broken conversion leaves
nothing half-written)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from tlstudio.core.deploy import formats, openvino_format
from tlstudio.core.deploy.formats import ALL, DeployError, export_format

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(  # not importorskip: the export must be the first to import openvino (telemetry)
        importlib.util.find_spec("openvino") is None,
        reason="openvino is not installed (pip install 'tlstudio[openvino]')",
    ),
]

# run in a fresh interpreter: the IR read back by openvino alone, nothing of TL Studio or TensorFlow
READ_BACK = """
import json, sys
import numpy as np
import openvino as ov
xml, images = sys.argv[1], np.load(sys.argv[2])
compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
probs = compiled(images.astype(np.float32))[compiled.output("probabilities")]
heavy = sorted(m for m in ("tensorflow", "keras", "tlstudio") if m in sys.modules)
print(json.dumps({"probabilities": probs.tolist(), "imported": heavy}))
"""


@pytest.fixture(scope="module")
def exported(probe_run, tmp_path_factory):
    """The shared tiny run exported once to OpenVINO (outside the run's own export folder)."""
    out = tmp_path_factory.mktemp("openvino") / "export" / "openvino"
    return export_format(probe_run, "openvino", out=out), out


def test_openvino_ir_verifies_in_its_runtime_and_reloads_in_openvino_alone(probe_run, exported, tmp_path):
    from tlstudio.core.deploy.run_inputs import RunInputs

    result, folder = exported
    assert result.folder == folder and result.status == "new"
    assert sys.modules["openvino_telemetry"] is None  # no usage events sent, no sender threads
    assert not [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")]
    assert sorted(p.name for p in folder.iterdir()) == [
        "labels.txt",
        "model.bin",
        "model.json",
        "model.xml",
        "predict_openvino.py",
    ]
    check = result.verification
    assert check.passed and check.agreement >= formats.MIN_AGREEMENT, check.rule
    assert check.max_probability_difference < 1e-4
    assert check.latency_ms_median > 0 and check.latency_ms_p95 >= check.latency_ms_median
    assert check.size_bytes == sum((folder / f).stat().st_size for f in ("model.xml", "model.bin"))
    assert check.per_class and all(abs(c["change"]) <= 1 for c in check.per_class.values())
    meta = json.loads((folder / "model.json").read_text())
    labels = (probe_run / "labels.txt").read_text().splitlines()
    assert meta["format"] == "openvino" and meta["file"] == "model.xml" and meta["labels"] == labels
    assert meta["input"]["weights"] == "model.bin" and meta["input"]["shape"] == [None, 32, 32, 3]
    assert meta["verification"]["passed"]

    inputs = RunInputs.load(probe_run)
    images, _ = inputs.test_images()
    np.save(tmp_path / "images.npy", images)
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(folder / "model.xml"), str(tmp_path / "images.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    back = json.loads(done.stdout.strip().splitlines()[-1])
    assert back["imported"] == []  # openvino and numpy alone
    probs = np.asarray(back["probabilities"], np.float32)
    reference = inputs.reference_probabilities(images)
    assert (probs.argmax(1) == reference.argmax(1)).all()
    assert np.abs(probs - reference).max() < 1e-4


def test_the_runtime_check_imports_openvino_alone(exported, tmp_path):
    _, folder = exported
    np.savez(tmp_path / "images.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    code = (
        "import sys; from tlstudio.core.deploy import runtime_check as r; "
        f"r.main([{'openvino'!r}, {str(folder / 'model.xml')!r}, {str(tmp_path / 'images.npz')!r}, "
        f"{str(tmp_path / 'out.json')!r}]); "
        "import threading; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules), "
        "[t.name for t in threading.enumerate()])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[] ['MainThread']"
    assert len(json.loads((tmp_path / "out.json").read_text())["probabilities"]) == 2


def test_a_broken_conversion_leaves_nothing_half_written(probe_run, exported, monkeypatch):
    _, folder = exported
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    convert = openvino_format.to_openvino

    def wrong_model(model, path, image_size):  # a converter bug: another model's weights
        import keras

        other = keras.models.clone_model(model)
        other.set_weights([np.random.default_rng(0).normal(0, 1, w.shape) for w in model.get_weights()])
        convert(other, path, image_size)

    monkeypatch.setattr(openvino_format, "to_openvino", wrong_model)
    with pytest.raises(DeployError, match="did not verify"):
        export_format(probe_run, "openvino", out=folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the verified one stays

    def half_written(model, path, image_size):  # dies after the .xml, before the .bin
        path.write_text("<net/>")
        raise OSError("disk went away")

    monkeypatch.setattr(openvino_format, "to_openvino", half_written)
    fresh = folder.parent / "openvino-fresh"
    with pytest.raises(DeployError, match="conversion failed"):
        export_format(probe_run, "openvino", out=fresh)
    monkeypatch.setattr(openvino_format, "to_openvino", lambda m, path, s: path.write_text("<net/>"))
    with pytest.raises(DeployError, match="runtime could not run it"):
        export_format(probe_run, "openvino", out=fresh)
    assert not fresh.exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["openvino"]  # no staging left behind
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_openvino_is_in_the_set_and_a_missing_runtime_names_its_extra(probe_run, monkeypatch, tmp_path):
    assert ("openvino", "float32") in ALL
    assert ("openvino", "int8") in ALL
    with pytest.raises(DeployError, match="float32 or int8"):
        export_format(probe_run, "openvino", quantize="float16")
    real = formats.importlib.util.find_spec
    monkeypatch.setattr(
        formats.importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a)
    )
    with pytest.raises(DeployError, match=r"tlstudio\[openvino\]"):
        export_format(probe_run, "openvino", out=tmp_path / "openvino")
    assert not (tmp_path / "openvino").exists()


def test_int8_is_accuracy_aware_quantised_within_a_point(probe_run, tmp_path):
    pytest.importorskip("nncf", reason="nncf is not installed (pip install 'tlstudio[openvino]')")
    result = export_format(probe_run, "openvino", quantize="int8", out=tmp_path / "openvino-int8")
    check = result.verification
    assert check.passed and check.accuracy_change >= -formats.MAX_ACCURACY_DROP, check.rule
    assert "accuracy drop" in check.rule and result.warnings and "calibrated on" in result.warnings[0]
    assert "FakeQuantize" in (tmp_path / "openvino-int8" / "model.xml").read_text()
    meta = json.loads((tmp_path / "openvino-int8" / "model.json").read_text())
    assert meta["quantization"] == "int8" and meta["input"]["dtype"] == "float32"


def test_cli_takes_openvino_and_refuses_its_other_modes_before_any_work(probe_run, monkeypatch, capsys):
    from tlstudio.cli import export as command
    from tlstudio.cli import main

    monkeypatch.setattr(command, "quiet_tensorflow", lambda: pytest.fail("refused too late"))
    assert main(["export", str(probe_run), "--format", "openvino", "--quantize", "float16"]) == 2
    assert main(["export", str(probe_run), "--format", "openvino", "--uint8-io"]) == 2
    assert "openvino: int8" in capsys.readouterr().err
