"""Score one exported artefact with its own runtime alone, in a fresh process.

    python -m tlstudio.core.runtime_check FORMAT MODEL_PATH IMAGES.npz OUT.json

FORMAT is ``tflite`` (the LiteRT interpreter), ``onnx`` (onnxruntime), ``openvino`` (the OpenVINO
runtime, CPU device, float32 precision hint) or ``saved_model`` (plain ``tf.saved_model.load``,
signature ``serving_default``). IMAGES.npz holds ``images``: uint8
[n, size, size, 3] RGB. OUT.json receives the probabilities, the latency of a batch of one (every
run, in milliseconds) and the throughput of batches of 32 (images per second); for ``tflite``, also
the class names read from inside the file (``labels``, or ``labels_error``: ``tflite_labels``).

This module imports nothing of TL Studio and only the runtime it checks, so what it measures is what
a user of that runtime gets. Quantised inputs and outputs (int8 / uint8) are quantised and
dequantised with the tensor's own scale and zero point.

For ``saved_model``, IMAGES.npz may also hold ``encoded_paths`` (image files: JPEGs with each EXIF
orientation, PNGs) and ``upright_<i>`` (each file's pixels as training decodes them: Pillow, EXIF
orientation applied). Each file then goes to ``serving_bytes`` and, inside a ``tf.Example``, to
``classify``, and its upright pixels to ``serving_default``; OUT.json's ``encoded`` lists the three
probability vectors per file, for the caller to compare.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable

import numpy as np

LATENCY_RUNS = 30
THROUGHPUT_BATCH = 32
THROUGHPUT_RUNS = 5


def tflite_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function from float32 pixel batches to probabilities, through the LiteRT interpreter."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the interpreter that ships inside TensorFlow
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path)
    state = {"batch": None}

    def run(x: np.ndarray) -> np.ndarray:
        inp = interpreter.get_input_details()[0]
        if state["batch"] != len(x):
            interpreter.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
            interpreter.allocate_tensors()
            state["batch"] = len(x)
            inp = interpreter.get_input_details()[0]
        interpreter.set_tensor(inp["index"], _quantize(x, inp))
        interpreter.invoke()
        out = interpreter.get_output_details()[0]
        return _dequantize(interpreter.get_tensor(out["index"]), out)

    return run


def onnx_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """The same through onnxruntime's CPU provider."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: np.asarray(session.run(None, {name: x.astype(np.float32)})[0])


def openvino_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """The same through the OpenVINO runtime (CPU; f32 precision hint, as the float IR holds; the
    thread count from ``OMP_NUM_THREADS`` when set)."""
    import os

    sys.modules.setdefault("openvino_telemetry", None)  # its own stub: the check sends no usage events
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": "f32"}
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        config["INFERENCE_NUM_THREADS"] = int(os.environ["OMP_NUM_THREADS"])
    compiled = ov.Core().compile_model(path, "CPU", config)
    return lambda x: np.asarray(compiled(x.astype(np.float32))[0])


@functools.cache
def _load_saved_model(path: str):
    import tensorflow as tf

    return tf.saved_model.load(path)


def saved_model_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """The same through plain TensorFlow and the ``serving_default`` signature."""
    import tensorflow as tf

    signature = _load_saved_model(path).signatures["serving_default"]
    key = sorted(signature.structured_outputs)[0]
    return lambda x: signature(images=tf.constant(x, tf.float32))[key].numpy()


def tflite_labels(path: str) -> list[str]:
    """The class names inside a ``.tflite`` file: the file the ``TFLITE_METADATA`` entry names as its
    output's ``TENSOR_AXIS_LABELS`` (metadata_schema.fbs), read from the zip on the file's end.

    Raises:
        ValueError: the file holds no such metadata or no such file.
    """
    import io
    import zipfile

    from flatbuffers import encode, number_types, packer
    from flatbuffers.table import Table

    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
    with open(path, "rb") as f:
        data = f.read()
    model = schema.Model.GetRootAs(data, 0)
    found = [model.Metadata(i) for i in range(model.MetadataLength())]
    entries = [m.Buffer() for m in found if m.Name() == b"TFLITE_METADATA"]
    if not entries:
        raise ValueError("the model holds no TFLITE_METADATA")
    meta = model.Buffers(entries[0]).DataAsNumpy().tobytes()
    if meta[4:8] != b"M001":
        raise ValueError("its TFLITE_METADATA is not a ModelMetadata (file identifier M001)")

    def field(table: Table, slot: int) -> int:
        return table.Offset(4 + 2 * slot)

    def items(table: Table, slot: int) -> list[Table]:
        o = field(table, slot)
        if not o:
            return []
        start = table.Vector(o)
        return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(o))]

    root = Table(meta, encode.Get(packer.uoffset, meta, 0))
    names = []
    for subgraph in items(root, 3):  # ModelMetadata.subgraph_metadata
        for tensor in items(subgraph, 3)[:1]:  # SubGraphMetadata.output_tensor_metadata
            for file in items(tensor, 6):  # TensorMetadata.associated_files
                kind = field(file, 2)
                if kind and file.Get(number_types.Int8Flags, kind + file.Pos) == 2:  # TENSOR_AXIS_LABELS
                    names.append(file.String(field(file, 0) + file.Pos).decode())
    if not names:
        raise ValueError("its metadata names no labels file for the output")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read(names[0]).decode("utf-8").splitlines()
    except (zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{names[0]} is not packed in the model file ({err})") from err


PACKED_THRESHOLDS = "thresholds.json"  # inside the .tflite's zip (tflite_metadata.THRESHOLDS_FILE)


def tflite_thresholds(path: str) -> dict[str, float] | None:
    """A multi-label model's thresholds packed in a ``.tflite`` file (``thresholds.json`` in the zip on
    its end), or None when it has none."""
    import zipfile

    try:  # (the zip's directory is at the file's end: no need to read the model into memory)
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(PACKED_THRESHOLDS))
    except (zipfile.BadZipFile, KeyError, ValueError):
        return None


RUNNERS = {
    "tflite": tflite_runner,
    "onnx": onnx_runner,
    "openvino": openvino_runner,
    "saved_model": saved_model_runner,
}


def saved_model_encoded(path: str, files: list[str], uprights: list[np.ndarray]) -> list[dict]:
    """Each encoded file through ``serving_bytes`` and ``classify``, its upright pixels through
    ``serving_default``: ``{"bytes", "classify", "pixels"}`` probabilities per file."""
    import tensorflow as tf

    signatures = _load_saved_model(path).signatures
    pixels = signatures["serving_default"]
    key = sorted(pixels.structured_outputs)[0]
    results = []
    for file, upright in zip(files, uprights, strict=True):
        with open(file, "rb") as f:
            data = f.read()
        example = tf.train.Example(
            features=tf.train.Features(
                feature={"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
            )
        )
        from_bytes = signatures["serving_bytes"](image_bytes=tf.constant([data]))["probabilities"]
        classified = signatures["classify"](inputs=tf.constant([example.SerializeToString()]))["scores"]
        from_pixels = pixels(images=tf.constant(upright[None], tf.float32))[key]
        results.append(
            {
                "bytes": from_bytes.numpy()[0].tolist(),
                "classify": classified.numpy()[0].tolist(),
                "pixels": from_pixels.numpy()[0].tolist(),
            }
        )
    return results


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero) if scale else x
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def check(
    fmt: str, path: str, images: np.ndarray, encoded: tuple[list[str], list[np.ndarray]] | None = None
) -> dict:
    """Probabilities, batch-1 latencies and batch-32 throughput of one artefact (and, for a
    SavedModel given ``encoded`` files and their upright pixels, what its encoded-image entry
    points make of them)."""
    run = RUNNERS[fmt](path)
    x = images.astype(np.float32)
    probabilities = np.concatenate([run(x[i : i + 1]) for i in range(len(x))]) if len(x) else np.zeros((0, 0))
    one = x[:1]
    for _ in range(3):
        run(one)
    latencies = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        run(one)
        latencies.append((time.perf_counter() - start) * 1000)
    batch = np.resize(x, (THROUGHPUT_BATCH, *x.shape[1:]))
    run(batch)
    start = time.perf_counter()
    for _ in range(THROUGHPUT_RUNS):
        run(batch)
    throughput = THROUGHPUT_BATCH * THROUGHPUT_RUNS / (time.perf_counter() - start)
    result = {
        "probabilities": probabilities.tolist(),
        "latency_ms": latencies,
        "throughput_images_per_second": throughput,
    }
    if fmt == "saved_model" and encoded is not None:
        result["encoded"] = saved_model_encoded(path, *encoded)
    if fmt == "tflite":  # the labels inside the file, for the caller to compare with the run's
        try:
            result["labels"] = tflite_labels(path)
        except ValueError as err:
            result["labels_error"] = str(err)
        if (thresholds := tflite_thresholds(path)) is not None:
            result["thresholds"] = thresholds
    return result


def main(argv: list[str]) -> int:
    fmt, path, images_file, out = argv
    with np.load(images_file) as data:
        images = data["images"]
        encoded = None
        if "encoded_paths" in data:
            paths = [str(p) for p in data["encoded_paths"]]
            encoded = (paths, [data[f"upright_{i}"] for i in range(len(paths))])
    result = check(fmt, path, images, encoded)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
