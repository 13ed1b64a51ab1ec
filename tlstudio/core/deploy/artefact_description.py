"""``model.json`` beside every artefact: what its input and output are, its labels and how it verified."""

from __future__ import annotations

from tlstudio.core.deploy.sample_clients import CLIENTS


def describe(
    inputs, fmt: str, quantize: str, uint8_io: bool, verification: dict, file: str
) -> dict[str, object]:
    """``model.json``: the input, the output, the labels, the source run, the verification and the
    sample client of one artefact.

    Args:
        inputs: the run's ``RunInputs``.
        fmt: the format; quantize: its quantisation; uint8_io: int8 TFLite with uint8 input/output.
        verification: how it verified (``Verification`` as a dict).
        file: the model file's name in the folder.

    Returns:
        The JSON-ready description.
    """
    size = inputs.image_size
    entry: dict[str, object]
    if fmt == "saved_model":
        entry = {
            "signatures": {
                "serving_default": "images float32 [batch, any, any, 3] → output_0 probabilities",
                "serving_uint8": "images uint8 [batch, any, any, 3] → output_0 probabilities",
                "serving_bytes": "image_bytes string [batch] (encoded JPEG/PNG/GIF/BMP) → probabilities, "
                "class_index, label",
                "classify": "TF Serving classify API: inputs = serialized tf.Example with 'image/encoded' → "
                "classes, scores",
            }
        }
    else:
        entry = {"shape": [None, size, size, 3], "dtype": "uint8" if uint8_io else "float32"}
    if fmt == "openvino":
        from tlstudio.core.deploy import openvino_format

        entry |= openvino_format.described()
    described = {
        "format": fmt,
        "quantization": quantize,
        "file": file,
        "input": entry
        | {
            "channel_order": "RGB",
            "value_range": [0, 255],
            "image_size": size,
            "resize": "to image_size × image_size before the call (Pillow bilinear, as in training)"
            if fmt != "saved_model"
            else "inside the model",
        },
        "preprocessing": f"inside the model ({inputs.preprocessing})",
        "output": (
            "independent probabilities per label [batch, labels] in labels order (sigmoid; a label is "
            "given at or above its threshold in thresholds.json)"
            if inputs.thresholds is not None
            else "probabilities [batch, classes] in labels order"
        )
        + (" (uint8, dequantise with the output scale)" if uint8_io else ""),
        "labels": inputs.labels,
        "source_run": str(inputs.run_dir),
        "backbone": inputs.backbone,
        "verification": verification,
        "client": CLIENTS[fmt] + " IMAGE (a sample client: this runtime, Pillow and numpy alone)"
        if fmt != "tfjs"
        else f"{CLIENTS[fmt]} (a sample page: serve this folder, e.g. python -m http.server, open it, "
        "pick an image; TensorFlow.js from its CDN)",
    }
    if fmt == "tflite":  # read back by the check: a mismatch with the run's classes fails the export
        from tlstudio.core.deploy.tflite_metadata import LABELS_FILE, METADATA_NAME

        described["labels_inside"] = (
            f"TFLite metadata ({METADATA_NAME}: the output's TENSOR_AXIS_LABELS file) with {LABELS_FILE} "
            "zipped on the file's end"
        )
    return described
