"""OpenVINO IR (``model.xml`` + ``model.bin``) from a trained Keras classifier.

The IR is converted by ``openvino.convert_model`` from the same fixed-size SavedModel the LiteRT
converter reads (float32 pixels [batch, size, size, 3], RGB 0–255, the preprocessing inside, a
dynamic batch) and saved in float32 (``ov.save_model(..., compress_to_fp16=False)``: OpenVINO's
default would halve the weights). Its input is named ``images`` and its output ``probabilities``.

``formats.export_format(run, "openvino")`` stages, verifies and puts it in place like every other
format: the check runs it with the OpenVINO runtime alone in a fresh process (``runtime_check``,
which imports only openvino and numpy), on the CPU device with ``INFERENCE_PRECISION_HINT`` ``f32``
(on CPUs with bf16 or AMX the CPU plugin would otherwise compute in bf16).

``int8`` is NNCF's accuracy-aware post-training quantisation
(``nncf.quantize_with_accuracy_control``) of that float IR: ranges calibrated on the run's training
images (up to 300, as for TFLite int8); the layers that cost most accuracy
are put back in float until top-1 accuracy on the run's validation images (else its training images;
never the test images the check scores it on) drops by no more than ``max_drop``. The check then
holds it to the same rule as TFLite int8: accuracy on the test images within ``max_accuracy_drop``
(one point) of the Keras model's.

Importing openvino or NNCF sends usage telemetry (Google Analytics) from a background thread pool
unless the user opted out (``~/intel/openvino_telemetry`` holding ``0``); an export sends none
(``block_telemetry``: both fall back to their own stubs when ``openvino_telemetry`` cannot be
imported).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

FILE_NAME = "model.xml"
WEIGHTS = "model.bin"  # beside the .xml, same stem: what ``ov.Core().read_model`` looks for
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
DEVICE = "CPU"
PRECISION_HINT = "f32"


def convert(inputs, path: Path, calibration: np.ndarray | None, max_drop: float) -> None:
    """Write the run's model as an OpenVINO IR at ``path`` (``.xml``), float32 or NNCF int8.

    Args:
        inputs: the run's ``RunInputs`` (model, images).
        path: the ``.xml`` file to write (``.bin`` beside it).
        calibration: ``int8``: uint8 training images [n, size, size, 3]; None: float32.
        max_drop: ``int8``: the largest top-1 accuracy loss NNCF may leave on the validation images.
    """
    if calibration is None:
        to_openvino(inputs.model, path, inputs.image_size)
        return
    images, truth = inputs._load(inputs._entries("val", "train"))  # never the test images
    known = truth >= 0
    with tempfile.TemporaryDirectory(prefix="tlstudio-openvino-") as tmp:
        float_ir = Path(tmp) / FILE_NAME
        to_openvino(inputs.model, float_ir, inputs.image_size)
        to_openvino_int8(float_ir, path, calibration, images[known], truth[known], max_drop)


def to_openvino_int8(
    float_ir: Path,
    path: Path,
    calibration: np.ndarray,
    images: np.ndarray,
    truth: np.ndarray,
    max_drop: float,
) -> None:
    """Quantise ``float_ir`` with NNCF's accuracy control and write the int8 IR at ``path``.

    Args:
        float_ir: the float32 ``.xml``.
        path: the ``.xml`` to write.
        calibration: uint8 images [n, size, size, 3] for the activation ranges.
        images: uint8 labelled images for the accuracy control; ``truth`` their class indices.
        max_drop: the largest absolute top-1 accuracy drop on ``images``.
    """
    block_telemetry()
    import nncf
    import openvino as ov

    if not len(calibration) or not len(images):
        raise ValueError("int8 needs calibration images and labelled validation images (the run's own)")
    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(float_ir))
    labelled = list(zip(images, truth, strict=True))

    def accuracy(compiled, items) -> float:
        hits = [int(np.argmax(compiled(x[None].astype(np.float32))[0])) == int(y) for x, y in items]
        return float(np.mean(hits))

    quiet = io.StringIO()  # NNCF draws progress bars on stdout (None in a windowed build)
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        quantised = nncf.quantize_with_accuracy_control(
            model,
            nncf.Dataset(calibration, lambda x: x[None].astype(np.float32)),
            nncf.Dataset(labelled, lambda item: item[0][None].astype(np.float32)),
            validation_fn=accuracy,
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(calibration),
        )
    ov.save_model(quantised, str(path), compress_to_fp16=False)


def to_openvino(model, path: Path, image_size: int) -> None:
    """Write ``path`` (``model.xml``, with ``model.bin`` beside it) in float32.

    Args:
        model: the run's Keras classifier (called once already).
        path: the ``.xml`` file to write.
        image_size: the fixed height and width of the input.
    """
    block_telemetry()
    import openvino as ov

    from tlstudio.core.deploy.converters import _fixed_saved_model

    with tempfile.TemporaryDirectory(prefix="tlstudio-openvino-") as tmp:
        fixed = Path(tmp) / "fixed"
        _fixed_saved_model(model, fixed, image_size)
        converted = ov.convert_model(str(fixed))
    if len(converted.inputs) != 1 or len(converted.outputs) != 1:
        raise ValueError(
            f"the converted model has {len(converted.inputs)} inputs and {len(converted.outputs)} outputs, "
            "not one of each"
        )
    converted.inputs[0].set_names({INPUT_NAME})
    converted.outputs[0].set_names({OUTPUT_NAME})
    ov.save_model(converted, str(path), compress_to_fp16=False)


def described() -> dict[str, object]:
    """What ``model.json`` adds for an OpenVINO artefact: the weights file, the names, the runtime."""
    return {
        "weights": WEIGHTS,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "runtime": f"OpenVINO, device {DEVICE}, INFERENCE_PRECISION_HINT {PRECISION_HINT} (as verified; "
        "on CPUs with bf16/AMX the CPU plugin's default is bf16)",
    }


def block_telemetry() -> None:
    """Importing openvino (and NNCF) sends a usage event to Google Analytics from a thread pool
    unless the user opted out; with ``openvino_telemetry`` unimportable both use their own stubs.
    Call before the first ``import openvino`` of the process (afterwards it changes nothing)."""
    import sys

    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
