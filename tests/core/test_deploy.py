"""Deployment formats: each artefact converted, checked by its own runtime alone, put in place atomically."""

from __future__ import annotations

import io
import json
import os
import socket

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tlstudio.core.data.pipeline import load_for_model
from tlstudio.core.data.split import Manifest
from tlstudio.core.deploy import converters
from tlstudio.core.deploy.export_set import export_all
from tlstudio.core.deploy.formats import DeployError, export_format

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(probe_run):
    """One trained run (probe only: quick)."""
    return probe_run


def split_images(run, colour_data):
    manifest = Manifest.load(run / "manifest.csv")
    entries = manifest.subset("test") + manifest.subset("val")
    images = np.stack([load_for_model(colour_data / e.path, 32) for e in entries])
    labels = (run / "labels.txt").read_text().splitlines()
    return images, np.array([labels.index(e.label) for e in entries]), labels


def keras_top1(run, images):
    import keras

    model = keras.models.load_model(run / "model.keras")
    return model.predict(images.astype("float32"), verbose=0).argmax(1)


def test_tflite_float32_runs_in_the_litert_interpreter_alone(run, colour_data):
    from ai_edge_litert.interpreter import Interpreter

    result = export_format(run, "tflite")
    folder = run / "export" / "tflite"
    assert result.folder == folder and sorted(p.name for p in folder.iterdir()) == [
        "labels.txt",
        "model.json",
        "model.tflite",
        "predict_tflite.py",
    ]
    images, _, labels = split_images(run, colour_data)
    interpreter = Interpreter(model_path=str(folder / "model.tflite"))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], [len(images), 32, 32, 3])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images.astype(np.float32))
    interpreter.invoke()
    probs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert (probs.argmax(1) == keras_top1(run, images)).mean() == 1.0
    meta = json.loads((folder / "model.json").read_text())
    assert meta["input"]["shape"] == [None, 32, 32, 3] and meta["labels"] == labels
    assert meta["verification"]["agreement"] == 1.0 and meta["verification"]["passed"]
    assert result.verification.size_bytes == (folder / "model.tflite").stat().st_size
    assert result.verification.latency_ms_median > 0 and result.verification.throughput_images_per_second > 0


def test_int8_with_uint8_io_is_quantised_and_within_a_point(run, colour_data):
    from ai_edge_litert.interpreter import Interpreter

    result = export_format(run, "tflite", quantize="int8", uint8_io=True)
    assert result.verification.accuracy_change >= -0.01
    assert result.warnings and "calibrated on" in result.warnings[0]
    interpreter = Interpreter(model_path=str(run / "export" / "tflite-int8" / "model.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    float_size = export_format(run, "tflite").verification.size_bytes
    assert result.verification.size_bytes < float_size  # tiny model: the file overhead dominates


def test_onnx_runs_in_onnxruntime_alone(run, colour_data):
    import onnxruntime as ort

    export_format(run, "onnx")
    session = ort.InferenceSession(
        str(run / "export" / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    images, _, _ = split_images(run, colour_data)
    probs = session.run(None, {session.get_inputs()[0].name: images.astype(np.float32)})[0]
    assert (probs.argmax(1) == keras_top1(run, images)).mean() == 1.0


def test_serving_saved_model_has_classify_and_encoded_image_input(run, colour_data):
    from tensorflow.core.protobuf import saved_model_pb2

    export_format(run, "saved_model")
    folder = run / "export" / "saved_model" / "saved_model"
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    assert proto.meta_graphs[0].signature_def["classify"].method_name == "tensorflow/serving/classify"
    images, _, labels = split_images(run, colour_data)
    encoded = []
    for image in images[:3]:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        encoded.append(buf.getvalue())
    loaded = tf.saved_model.load(str(folder))
    got = loaded.signatures["serving_bytes"](image_bytes=tf.constant(encoded))
    want = keras_top1(run, images[:3])
    assert [s.decode() for s in got["label"].numpy()] == [labels[i] for i in want]
    example = tf.train.Example(
        features=tf.train.Features(
            feature={"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded[0]]))}
        )
    )
    classified = loaded.signatures["classify"](inputs=tf.constant([example.SerializeToString()]))
    assert [c.decode() for c in classified["classes"].numpy()[0]] == labels
    assert classified["scores"].numpy().argmax(1)[0] == want[0]


def test_the_run_saved_model_converts_with_the_standard_tools(run, colour_data, tmp_path):
    """As a user would: the TFLite converter with default arguments, and tf2onnx's command line."""
    import subprocess
    import sys

    import onnxruntime as ort

    saved = str(run / "saved_model")
    tflite = tf.lite.TFLiteConverter.from_saved_model(saved).convert()  # every signature, builtins only
    assert len(tflite) > 1000
    onnx_file = tmp_path / "m.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--output", str(onnx_file)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    images, _, _ = split_images(run, colour_data)
    feed = {session.get_inputs()[0].name: images.astype(np.float32)}
    assert (session.run(None, feed)[0].argmax(1) == keras_top1(run, images)).mean() == 1.0


def test_a_broken_conversion_is_refused_and_leaves_the_old_export(run, monkeypatch):
    export_format(run, "onnx")
    before = (run / "export" / "onnx" / "model.onnx").read_bytes()

    def wrong_model(model, path, image_size):  # a converter bug: another model's weights
        import keras

        other = keras.models.clone_model(model)
        other.set_weights([np.random.default_rng(0).normal(0, 1, w.shape) for w in model.get_weights()])
        return converters_to_onnx(other, path, image_size)

    converters_to_onnx = converters.to_onnx
    monkeypatch.setattr(converters, "to_onnx", wrong_model)
    with pytest.raises(DeployError, match="did not verify"):
        export_format(run, "onnx")
    assert (run / "export" / "onnx" / "model.onnx").read_bytes() == before  # the good one stays
    assert not [p for p in (run / "export").iterdir() if p.name.startswith(".")]

    monkeypatch.setattr(converters, "to_tflite", lambda *a, **k: a[1].write_bytes(b"not a flatbuffer"))
    with pytest.raises(DeployError, match="runtime could not run it"):
        export_format(run, "tflite", quantize="float16", out=run / "export" / "broken")
    assert not (run / "export" / "broken").exists()


def test_leftovers_of_a_killed_export_are_cleaned_and_bad_arguments_refused(run):
    (run / "export" / ".staging-tflite-999999999-abc").mkdir(parents=True)
    (run / "export" / ".old-onnx-999999999").mkdir()
    export_format(run, "tflite")
    assert not [p for p in (run / "export").iterdir() if p.name.startswith(".")]
    with pytest.raises(DeployError, match="quantisation applies to tflite"):
        export_format(run, "onnx", quantize="int8")
    with pytest.raises(DeployError, match="unknown format"):
        export_format(run, "caffe")
    with pytest.raises(DeployError, match=r"^coreml: "):  # named, refused with the reason
        export_format(run, "coreml")
    with pytest.raises(DeployError, match="uint8-io"):
        export_format(run, "tflite", uint8_io=True)


def test_export_all_writes_one_table(run):
    results = export_all(run)
    assert [r.name for r in results] == [
        "saved_model",
        "tflite",
        "tflite-float16",
        "tflite-dynamic",
        "tflite-int8",
        "openvino",
        "openvino-int8",
        "onnx",
        "tfjs",
        "coreml",
    ]
    assert all(r.error is None for r in results), [r.error for r in results]
    from tlstudio.core.deploy.tfjs_format import missing

    assert results[-2].status == ("new" if missing() is None else "skipped")  # TF.js: where Node is
    coreml = results[-1]  # named, with the reason, not made
    assert coreml.status == "skipped" and coreml.folder is None and coreml.skipped.startswith("coreml: ")
    summary = json.loads((run / "export" / "summary.json").read_text())
    assert [s["name"] for s in summary] == [r.name for r in results]


def test_cli_export_prints_the_table_and_json(run, capsys):
    from tlstudio.cli import main

    assert main(["export", str(run), "--format", "tflite", "--quantize", "dynamic", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["name"] == "tflite-dynamic" and data[0]["verification"]["passed"]
    assert main(["export", str(run / "nope")]) == 2
    assert main(["export", str(run), "--out", "x"]) == 2


def test_cli_export_refuses_what_it_must_not_do_before_any_work(run, tmp_path, capsys, monkeypatch):
    import shutil

    from tlstudio.cli import export as command
    from tlstudio.cli import main

    monkeypatch.setattr(command, "quiet_tensorflow", lambda: pytest.fail("refused too late"))
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "keep.txt").write_text("a user's file")
    assert main(["export", str(run), "--format", "tflite", "--out", str(kept)]) == 2
    assert (kept / "keep.txt").read_text() == "a user's file"  # nothing of theirs replaced
    assert "not an earlier export" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("x")
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "a_file")]) == 2
    assert main(["export", str(run), "--format", "onnx", "--quantize", "int8"]) == 2
    assert main(["export", str(run), "--format", "tflite", "--uint8-io"]) == 2
    assert main(["export", str(tmp_path)]) == 2  # a folder, but not a run's
    assert "not a run folder" in capsys.readouterr().err
    dull = tmp_path / "dull"
    shutil.copytree(run, dull, ignore=shutil.ignore_patterns("export", "saved_model", "features"))
    info = json.loads((dull / "run.json").read_text())
    (dull / "run.json").write_text(json.dumps({**info, "status": "failed_to_learn"}))
    assert main(["export", str(dull), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "did not learn" in err and "--force" in err
    (dull / "run.json").write_text(json.dumps({**info, "status": "running"}))
    (dull / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": 0}))
    assert main(["export", str(dull), "--format", "onnx"]) == 2
    assert "still training" in capsys.readouterr().err


def test_cancelled_exports_put_nothing_in_place_and_kill_the_checking_process(run, tmp_path):
    import sys
    import threading
    import time

    from tlstudio.core.deploy.formats import DeployCancelled, _run_cancellable

    stop = threading.Event()
    stop.set()
    out = tmp_path / "onnx"
    with pytest.raises(DeployCancelled, match="cancelled"):
        export_format(run, "onnx", out=out, stop=stop)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]

    seen = []
    results = export_all(run, stop=stop, progress=lambda done, total, name: seen.append((done, total, name)))
    assert seen[0][:2] == (0, len(results)) and all("cancelled" in r.error for r in results)

    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(DeployCancelled):
        _run_cancellable([sys.executable, "-c", "import time; time.sleep(60)"], stop, "a slow check")
    assert time.monotonic() - started < 5  # killed, not waited for
    code, err = _run_cancellable([sys.executable, "-c", "import sys; sys.exit('boom')"], None, "x")
    assert code == 1 and "boom" in err


def test_an_exported_saved_model_folder_is_what_predict_and_evaluate_take(run):
    from tlstudio.core.results.evaluation import load_exported

    result = export_format(run, "saved_model")
    model = load_exported(result.folder)  # RUN/export/saved_model: its size from the description
    assert model.image_size == json.loads((run / "metadata.json").read_text())["image_size"]
    assert model.labels == (result.folder / "labels.txt").read_text().splitlines()
