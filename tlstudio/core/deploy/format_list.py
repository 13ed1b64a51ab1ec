"""The formats as a user picks them (CLI and app alike), and the ones that cannot be made here, each with
the one-line reason: Core ML (verifiable on macOS only; not in this build) and TF.js where Node.js or the
check's TensorFlow.js packages are missing. ``--format all`` lists those as ``skipped`` with the reason;
asking for one alone is refused before any work. Never an artefact not verified in its own runtime.
"""

from __future__ import annotations

import platform

CHOICES = (  # (shown, format, quantisation); "all" exports every one
    ("Every format, side by side", "all", "float32"),
    ("TFLite (LiteRT), float32, labels inside", "tflite", "float32"),
    ("TFLite, float16", "tflite", "float16"),
    ("TFLite, dynamic-range int8", "tflite", "dynamic"),
    ("TFLite, full integer int8", "tflite", "int8"),
    ("ONNX", "onnx", "float32"),
    ("OpenVINO IR, float32", "openvino", "float32"),
    ("OpenVINO IR, int8 (NNCF, accuracy-aware)", "openvino", "int8"),
    ("SavedModel for TF Serving", "saved_model", "float32"),
    ("Core ML", "coreml", "float32"),
    ("TF.js graph model (browser, Node)", "tfjs", "float32"),
)
UNAVAILABLE = ("coreml", "tfjs")  # may be refused here: see ``unavailable``
NOT_BUILT = ("coreml",)  # named in every set's table as skipped, with the reason

TFJS_EVIDENCE = (  # why tfjs_format writes the graph model by hand
    "the TensorFlow.js converter does not install beside TensorFlow 2.21: tensorflowjs 4.22.0 (the latest) "
    "needs tensorflow-decision-forests, whose newest release (1.12.0) pins tensorflow==2.19.0 (pip: "
    "ResolutionImpossible), and the version pip falls back to, tensorflowjs 3.18.0 (2022), fails on "
    "NumPy 2 (np.object)"
)


def unavailable(fmt: str, system: str | None = None) -> str | None:
    """Why ``fmt`` cannot be exported (and verified) here, in one line; None when it can.

    Args:
        fmt: a format name.
        system: the operating system (``platform.system()``; given in tests).

    Returns:
        The reason, naming the format, or None.
    """
    system = system or platform.system()
    if fmt == "coreml":
        if system != "Darwin":
            return (
                "coreml: a Core ML model can only be verified on macOS (coremltools runs Core ML models "
                f"there alone); this machine runs {system}, so none is made"
            )
        return (
            "coreml: not in this build: its conversion has not been verified on a Mac yet, and TL Studio "
            "ships no format it has not run in that format's own runtime"
        )
    if fmt == "tfjs":
        from tlstudio.core.deploy.tfjs_format import missing

        return missing()
    return None
