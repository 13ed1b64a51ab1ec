"""Labels inside a ``.tflite`` file: the TFLite metadata schema's ``ModelMetadata`` in the model's
``TFLITE_METADATA`` entry and ``labels.txt`` zipped onto the end, as the metadata populator does.

Written by hand with ``flatbuffers`` and the model schema shipped with LiteRT, because no maintained
writer installs light beside TF 2.21: ``tflite-support`` (the old ``MetadataWriter``, last released
2023) pins protobuf below 4, and MediaPipe's writer (``mediapipe.tasks.python.metadata``) cannot be
imported without all of MediaPipe, which pulls in OpenCV and ships no TFLite-only part. Readers that
understand the schema (MediaPipe Tasks, Android Studio's ML binding, the TFLite Support library) find
the labels as the output tensor's ``TENSOR_AXIS_LABELS`` file; anyone else can open the model file as a
zip archive (``zipfile.ZipFile("model.tflite").read("labels.txt")``).

Example:
    >>> model = Path("model.tflite").read_bytes()  # doctest: +SKIP
    >>> labelled = embed_labels(model, ["cat", "dog"], image_size=224)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import zipfile

import flatbuffers
import numpy as np

METADATA_NAME = "TFLITE_METADATA"  # the Model.metadata entry readers look for
METADATA_IDENTIFIER = b"M001"  # metadata_schema.fbs: file_identifier
MODEL_IDENTIFIER = b"TFL3"
LABELS_FILE = "labels.txt"
THRESHOLDS_FILE = "thresholds.json"  # multi-label: each label's decision threshold, beside labels.txt
MIN_PARSER_VERSION = "1.0.0"  # only fields of the schema's first version are written
BUFFER_ALIGNMENT = 16  # schema.fbs: Buffer.data (force_align: 16), kept when the model is packed again
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
_RGB = 1  # ColorSpaceType
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties union
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # the copy inside TensorFlow
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def embed_labels(
    model: bytes,
    labels: list[str],
    *,
    image_size: int,
    name: str = "TL Studio image classifier",
    description: str = "",
    thresholds: list[float] | None = None,
) -> bytes:
    """``model`` with the labels (and what its input and output are) inside.

    Args:
        model: a ``.tflite`` flatbuffer.
        labels: class names in output order.
        image_size: the input's height and width.
        name: the model's name in its metadata.
        description: one line on what the model classifies.
        thresholds: a multi-label model's decision threshold per label (``thresholds.json`` in the zip).

    Returns:
        The model with a ``TFLITE_METADATA`` entry (replacing any earlier one) and ``labels.txt`` (and
        for multi-label ``thresholds.json``) zipped onto its end. Its tensors and weights are unchanged.
    """
    if any("\n" in label or "\r" in label for label in labels):
        raise ValueError("a class name with a line break cannot be one line of labels.txt")
    schema = _schema()
    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    data = np.frombuffer(_model_metadata(labels, image_size, name, description), np.uint8)
    entries = [m for m in (tree.metadata or []) if _text(m.name) != METADATA_NAME]
    old = {m.buffer for m in tree.metadata or []} - {m.buffer for m in entries}
    index = min(old) if old else len(tree.buffers)  # an earlier entry's buffer is reused
    buffer = schema.BufferT()
    buffer.data = data
    if index == len(tree.buffers):
        tree.buffers.append(buffer)
    else:
        tree.buffers[index] = buffer
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, index
    tree.metadata = [*entries, entry]
    tree.buffers = [_Aligned(b) for b in tree.buffers]
    builder = flatbuffers.Builder(len(model) + len(data) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    out = io.BytesIO(bytes(builder.Output()))
    with zipfile.ZipFile(out, "a") as archive:  # a file that is no zip yet: the archive goes on its end
        archive.writestr(LABELS_FILE, "\n".join(labels) + "\n")
        if thresholds is not None:
            archive.writestr(THRESHOLDS_FILE, json.dumps(dict(zip(labels, thresholds, strict=True))))
    return out.getvalue()


def compare_labels(
    measured: dict, labels: list[str], thresholds: list[float] | None = None
) -> tuple[bool, str]:
    """Whether the labels a check read back from inside a ``.tflite`` (``runtime_check``'s ``labels``
    or ``labels_error``) are the run's classes — and for multi-label, its ``thresholds`` the run's —
    and the rule's words."""
    if thresholds is not None:
        want = dict(zip(labels, thresholds, strict=True))
        got = measured.get("thresholds")
        if got is None or set(got) != set(want) or any(abs(got[k] - v) > 1e-9 for k, v in want.items()):
            return False, f"the thresholds inside model.tflite are not the run's ({got} ≠ {want})"
    inside = measured.get("labels")
    if inside is None:
        return False, f"no labels inside model.tflite: {measured.get('labels_error', 'not read back')}"
    if list(inside) != list(labels):
        pairs = enumerate(zip(inside, labels, strict=False))
        differ = [f"{i}: {a!r} ≠ {b!r}" for i, (a, b) in pairs if a != b]
        shown = "; ".join(differ[:3]) or f"{len(inside)} labels, {len(labels)} classes"
        return False, f"the labels inside model.tflite are not the run's classes ({shown})"
    if thresholds is not None:
        return True, f"the {len(labels)} labels and thresholds inside model.tflite are the run's"
    return True, f"the {len(labels)} labels inside model.tflite are the run's classes"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


class _Aligned:
    """A ``BufferT`` packed with its data on a 16-byte boundary (the generated ``Pack`` aligns to 1)."""

    def __init__(self, buffer) -> None:
        self.buffer = buffer

    def Pack(self, builder):  # the generated object API's name
        schema = _schema()
        data = self.buffer.data
        vector = None
        if data is not None:
            payload = np.asarray(data, np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            vector = builder.EndVector()
        schema.BufferStart(builder)
        if vector is not None:
            schema.BufferAddData(builder, vector)
        schema.BufferAddOffset(builder, self.buffer.offset)
        schema.BufferAddSize(builder, self.buffer.size)
        return schema.BufferEnd(builder)


def _model_metadata(labels: list[str], image_size: int, name: str, description: str) -> bytes:
    """The ``ModelMetadata`` flatbuffer (metadata_schema.fbs; field slots in its declared order)."""
    b = flatbuffers.Builder(1024)

    def table(fields: list[tuple[int, str, object]]) -> int:
        """fields: (slot, kind, value) with kind ``offset``, ``byte`` or ``uint``."""
        b.StartObject(max(slot for slot, _, _ in fields) + 1 if fields else 0)
        for slot, kind, value in fields:
            if kind == "offset":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "byte":
                b.PrependInt8Slot(slot, value, 0)
            else:
                b.PrependUint32Slot(slot, value, 0)
        return b.EndObject()

    def offsets(items: list[int]) -> int:
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    def floats(values: list[float]) -> int:
        return b.CreateNumpyVector(np.asarray(values, np.float32))

    def stats(low: float, high: float) -> int:
        return table([(0, "offset", floats([high])), (1, "offset", floats([low]))])  # Stats: max, min

    # input: RGB 0–255 pixels, the preprocessing inside the model (mean 0, std 1 says so)
    size = table([(0, "uint", image_size), (1, "uint", image_size)])  # ImageSize
    image = table([(0, "byte", _RGB), (1, "offset", size)])  # ImageProperties
    image_content = table([(0, "byte", _IMAGE_PROPERTIES), (1, "offset", image)])  # Content
    normalization = table([(0, "offset", floats([0.0])), (1, "offset", floats([1.0]))])
    unit = table([(0, "byte", _NORMALIZATION_OPTIONS), (1, "offset", normalization)])  # ProcessUnit
    input_stats = stats(0.0, 255.0)
    input_name = b.CreateString("image")
    input_text = b.CreateString(
        f"RGB pixels 0-255, float32 [batch, {image_size}, {image_size}, 3] (resize first); "
        "the preprocessing is inside the model"
    )
    image_tensor = table(
        [
            (0, "offset", input_name),
            (1, "offset", input_text),
            (3, "offset", image_content),
            (4, "offset", offsets([unit])),
            (5, "offset", input_stats),
        ]
    )
    # output: probabilities in labels.txt's order
    labels_name = b.CreateString(LABELS_FILE)
    labels_text = b.CreateString("class names, one a line, in the order of the output's probabilities")
    labels_file = table(
        [(0, "offset", labels_name), (1, "offset", labels_text), (2, "byte", _TENSOR_AXIS_LABELS)]
    )
    feature = table([])  # FeatureProperties
    feature_content = table([(0, "byte", _FEATURE_PROPERTIES), (1, "offset", feature)])
    output_stats = stats(0.0, 1.0)
    output_name = b.CreateString("probability")
    output_text = b.CreateString(f"probabilities [batch, {len(labels)}] of the classes in labels.txt")
    probability = table(
        [
            (0, "offset", output_name),
            (1, "offset", output_text),
            (3, "offset", feature_content),
            (5, "offset", output_stats),
            (6, "offset", offsets([labels_file])),
        ]
    )
    subgraph = table([(2, "offset", offsets([image_tensor])), (3, "offset", offsets([probability]))])
    model_name = b.CreateString(name)
    model_text = b.CreateString(description or f"classifies an image into {len(labels)} classes")
    author = b.CreateString("TL Studio")
    parser = b.CreateString(MIN_PARSER_VERSION)
    root = table(
        [
            (0, "offset", model_name),
            (1, "offset", model_text),
            (3, "offset", offsets([subgraph])),
            (4, "offset", author),
            (7, "offset", parser),
        ]
    )
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())
