"""TF.js graph models, written by hand and verified by TensorFlow.js itself in a fresh Node process.

The ``tensorflowjs`` converter does not install beside TensorFlow 2.21 (``format_list.TFJS_EVIDENCE``),
so the graph model is written here the way it writes one: the model's fixed-size function frozen to a
``GraphDef`` (as for ONNX), the ``GraphDef`` as JSON in ``model.json``'s ``modelTopology``, every
constant's values moved into ``group1-shard*of*.bin`` (4 MB shards) listed in ``weightsManifest``
(int64 constants as int32: TF.js has no int64). No graph optimisation is applied; an op TF.js lacks makes
the check fail and nothing is put in place.

The check (``tfjs/check.js``) loads it with ``@tensorflow/tfjs-converter`` on the pure-JS CPU backend
(``tfjs/package.json``, installed by ``npm ci --prefix tlstudio/core/deploy/tfjs``) and writes the same
figures ``runtime_check`` writes for the other formats.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

CHECK_FOLDER = Path(__file__).resolve().parent / "tfjs"  # package.json, check.js, node_modules/
MODEL_FILE = "model.json"
SHARD_BYTES = 4 * 1024 * 1024  # as tensorflowjs_converter's default
CONVERTED_BY = "TL Studio (tfjs_format.py; the tensorflowjs converter does not install beside TF 2.21)"
_CLEARED = ("tensor_content", "half_val", "float_val", "double_val", "int_val", "string_val", "int64_val")
_DTYPES = {"float32": "float32", "int32": "int32", "int64": "int32", "bool": "bool"}


def missing() -> str | None:
    """Why the TF.js check cannot run here (Node.js or its packages missing), or None."""
    if shutil.which("node") is None:
        return "tfjs: its check needs Node.js (node on PATH), which is not installed here"
    if not (CHECK_FOLDER / "node_modules" / "@tensorflow" / "tfjs-converter").is_dir():
        return f"tfjs: its check needs TensorFlow.js for Node: npm ci --prefix {CHECK_FOLDER}"
    return None


def convert(model, folder: Path, image_size: int) -> None:
    """Write ``folder/model.json`` and its weight shards.

    Args:
        model: the run's Keras classifier (called once already).
        folder: the graph model's folder (created).
        image_size: the fixed height and width of the input.
    """
    import numpy as np
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from tlstudio.core.deploy.converters import _fixed_spec

    function = tf.function(lambda images: model(images, training=False), autograph=False)
    concrete = function.get_concrete_function(_fixed_spec(image_size))
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
    graph = frozen.graph.as_graph_def()
    if graph.library.function:
        raise ValueError("the frozen graph still calls functions, which TF.js graph models cannot hold")
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    specs, chunks = [], []
    for node in graph.node:
        if node.op != "Const":
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        dtype = _DTYPES.get(value.dtype.name)
        if dtype is None:
            raise ValueError(f"constant {node.name} is {value.dtype.name}, which TF.js weights cannot hold")
        value = np.ascontiguousarray(value.astype(np.bool_ if dtype == "bool" else dtype))
        specs.append({"name": node.name, "shape": list(value.shape), "dtype": dtype})
        chunks.append(value.astype(value.dtype.newbyteorder("<")).tobytes())
        tensor = node.attr["value"].tensor
        for name in _CLEARED:
            tensor.ClearField(name)
        if dtype == "int32":
            tensor.dtype = node.attr["dtype"].type = tf.int32.as_datatype_enum
    data = b"".join(chunks)
    count = max(1, -(-len(data) // SHARD_BYTES))
    paths = [f"group1-shard{i + 1}of{count}.bin" for i in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(paths):
        (folder / name).write_bytes(data[i * SHARD_BYTES : (i + 1) * SHARD_BYTES])
    described = {
        "format": "graph-model",
        "generatedBy": tf.__version__,
        "convertedBy": CONVERTED_BY,
        "modelTopology": json_format.MessageToDict(graph),
        "weightsManifest": [{"paths": paths, "weights": specs}],
        "userDefinedMetadata": {"input": inputs[0], "output": frozen.outputs[0].name},
    }
    (folder / MODEL_FILE).write_text(json.dumps(described), encoding="utf-8")


def check_command(model_json: Path, images: np.ndarray, scratch: Path, out: Path) -> list[str]:
    """The Node command that scores ``model_json`` on ``images`` (uint8 [n, size, size, 3]) into ``out``."""
    import numpy as np

    pixels = scratch / "images.bin"
    np.ascontiguousarray(images, dtype="<f4").tofile(pixels)
    size = images.shape[1] if images.ndim == 4 else 0
    command = [str(model_json), str(pixels), str(len(images)), str(size), str(out)]
    return [shutil.which("node") or "node", str(CHECK_FOLDER / "check.js"), *command]
