"""Deployment formats of a run, each verified in its own runtime before it is put in place.

``export_format(run_dir, "tflite", quantize="int8")`` converts the run's ``model.keras`` and writes
``RUN/export/tflite-int8/`` with ``model.tflite``, ``labels.txt`` and ``model.json`` (what the input
is, the labels, the quantisation, the source run and the verification). The artefact is first
staged in a hidden folder, scored in a fresh process by its runtime alone (``runtime_check``) on the
run's test images against the trained Keras model, and renamed into place only when it agrees
(top-1 agreement ≥ ``min_agreement`` for float formats, accuracy drop ≤ ``max_accuracy_drop`` for
quantised integer ones); otherwise nothing is left behind. A ``saved_model`` is also fed encoded
files — JPEGs stored with every EXIF orientation (1–8, both byte orders), a JPEG and a PNG without
EXIF, a PNG with an ``eXIf`` orientation — through ``serving_bytes`` and ``classify``, and must give
what ``serving_default`` gives on the same files decoded as training decodes them (Pillow, EXIF
orientation applied): the same top class for every file, probabilities within ``PNG_TOLERANCE``
(lossless: only the orientation can differ) or ``JPEG_TOLERANCE`` (TF and Pillow decode JPEG
identically here, but other builds of libjpeg may differ by a level or two).

Formats: ``saved_model`` (for TF Serving: predict signatures plus ``classify`` with the classify
method and ``serving_bytes`` taking encoded JPEG/PNG/GIF/BMP files), ``tflite`` (LiteRT; float32,
float16, dynamic-range or full-integer int8 calibrated on the run's training images), ``onnx``
(tf2onnx, opset 17, onnxruntime) and ``openvino`` (IR, float32 or NNCF int8: ``openvino_format``).
A ``.tflite`` carries its labels inside (TFLite metadata: ``tflite_metadata``), read back by the check
and compared with the run's classes. Each folder also gets a sample client, ``predict_<format>.py``
(``sample_clients``; TF.js: an HTML page). ``tfjs`` is a graph model written by hand (``tfjs_format``)
and checked by TensorFlow.js in Node. Core ML is named but refused here, with the reason
(``format_list``).
TFLite, ONNX and OpenVINO take float32 pixels [batch, size, size, 3], RGB 0–255, the preprocessing
inside; ``--uint8-io`` gives an int8 model uint8 input and output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tlstudio.core import atomic
from tlstudio.core.cancel import Cancelled
from tlstudio.core.deploy.artefact_description import describe
from tlstudio.core.deploy.artefact_files import artefact_size, clean_leftovers, put_in_place
from tlstudio.core.deploy.format_list import unavailable
from tlstudio.core.deploy.run_inputs import DeployError, RunInputs
from tlstudio.core.deploy.sample_clients import add_client
from tlstudio.core.results import run_folder as files

if TYPE_CHECKING:  # numpy loads with the work, not with `tlstudio --help`
    import numpy as np

FORMATS = ("saved_model", "tflite", "onnx", "openvino", "tfjs")
QUANTIZE_MODES = ("float32", "float16", "dynamic", "int8")
DESCRIPTION = files.EXPORT_DESCRIPTION  # in every artefact's folder: what the input and output are
ALL = (
    ("saved_model", "float32"),
    ("tflite", "float32"),
    ("tflite", "float16"),
    ("tflite", "dynamic"),
    ("tflite", "int8"),
    ("openvino", "float32"),
    ("openvino", "int8"),
    ("onnx", "float32"),
    ("tfjs", "float32"),  # skipped, with the reason, where Node.js or its check's packages are missing
)
MIN_AGREEMENT = 0.995
MAX_ACCURACY_DROP = 0.01
CALIBRATION_IMAGES = 300
FEW_CALIBRATION_IMAGES = 200
# the tflite check falls back to tf.lite.Interpreter
NEEDS = {"onnx": ("tf2onnx", "onnxruntime"), "openvino": ("openvino",), "openvino-int8": ("openvino", "nncf")}
FILE_NAMES = {"saved_model": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
FILE_NAMES["openvino"] = "model.xml"  # and model.bin beside it
FILE_NAMES["tfjs"] = "tfjs_model"  # model.json and its weight shards


@dataclass
class Verification:
    """How an artefact, run by its own runtime, compares with the trained Keras model."""

    images: int
    agreement: float  # top-1 agreement with the Keras model
    accuracy: float
    reference_accuracy: float
    accuracy_change: float
    max_probability_difference: float
    latency_ms_median: float
    latency_ms_p95: float
    throughput_images_per_second: float
    size_bytes: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    passed: bool = True
    rule: str = ""
    encoded_files: int = 0  # saved_model: encoded files fed to serving_bytes and classify
    encoded_max_probability_difference: float = 0.0


@dataclass
class DeployResult:
    """One format's outcome."""

    format: str
    quantize: str
    folder: Path | None
    verification: Verification | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    exported_at: str | None = None  # when the artefact in ``folder`` was verified (ISO 8601, UTC)
    previous: dict[str, object] | None = None  # this export failed; the earlier verified artefact stays
    skipped: str | None = None  # not made on this machine, and why (``format_list.unavailable``)

    @property
    def name(self) -> str:
        """``tflite-int8``, ``onnx``, ``saved_model``."""
        return self.format if self.quantize == "float32" else f"{self.format}-{self.quantize}"

    @property
    def status(self) -> str:
        """``new`` (verified now), ``previous`` (failed now; an earlier verified one stays), ``failed`` or
        ``skipped`` (a format not made on this machine: ``skipped`` says why)."""
        if self.skipped:
            return "skipped"
        return "new" if self.error is None else "previous" if self.previous else "failed"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "format": self.format,
            "quantize": self.quantize,
            "name": self.name,
            "folder": str(self.folder) if self.folder else None,
            "verification": asdict(self.verification) if self.verification else None,
            "error": self.error,
            "warnings": self.warnings,
            "status": self.status,
            "exported_at": self.exported_at,
            "previous": self.previous,
            "skipped": self.skipped,
        }


class DeployCancelled(DeployError, Cancelled):
    """The export was cancelled (``stop`` was set); nothing of the artefact under way was put in place."""


def _check(stop: threading.Event | None, what: str) -> None:
    if stop is not None and stop.is_set():
        raise DeployCancelled(f"{what}: cancelled; nothing was put in place")


def artefact_name(fmt: str, quantize: str) -> str:
    """The folder name under ``RUN/export/``."""
    return fmt if quantize == "float32" else f"{fmt}-{quantize}"


def export_format(
    run_dir: str | os.PathLike[str],
    fmt: str,
    *,
    quantize: str = "float32",
    out: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    uint8_io: bool = False,
    min_agreement: float = MIN_AGREEMENT,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    stop: threading.Event | None = None,
) -> DeployResult:
    """Convert, verify in a fresh process and put one artefact in place.

    Args:
        run_dir: a run folder with ``model.keras`` and ``metadata.json``.
        fmt: one of ``FORMATS``.
        quantize: one of ``QUANTIZE_MODES`` (only ``float32`` for saved_model and onnx).
        out: the artefact's folder (default ``RUN/export/<format>[-<mode>]``).
        data_dir: the data folder, when the run's recorded one has moved.
        uint8_io: int8 TFLite with uint8 input and output (microcontrollers, Edge TPU).
        min_agreement: float formats: least top-1 agreement with the Keras model.
        max_accuracy_drop: quantised integer formats: largest accuracy loss allowed.
        stop: set to cancel (checked around the conversion; the verifying process is killed).

    Returns:
        The result, with its verification.

    Raises:
        DeployError: bad arguments, a failed conversion or a failed verification (nothing written).
        DeployCancelled: ``stop`` was set (nothing written).
    """
    if reason := unavailable(fmt):
        raise DeployError(reason)
    if fmt not in FORMATS:
        raise DeployError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)}, or all)")
    if quantize not in QUANTIZE_MODES:
        raise DeployError(f"unknown quantisation '{quantize}' (choose from {', '.join(QUANTIZE_MODES)})")
    if fmt not in ("tflite", "openvino") and quantize != "float32":
        raise DeployError(
            f"{fmt} is exported in float32 only; quantisation applies to tflite (openvino: int8)"
        )
    if fmt == "openvino" and quantize not in ("float32", "int8"):
        raise DeployError(f"openvino is exported in float32 or int8, not {quantize}")
    if uint8_io and not (fmt == "tflite" and quantize == "int8"):
        raise DeployError("--uint8-io needs --format tflite --quantize int8")
    for name, value in (("min_agreement", min_agreement), ("max_accuracy_drop", max_accuracy_drop)):
        if not 0 <= value <= 1:
            raise DeployError(f"{name} must be between 0 and 1, not {value}")
    needs = NEEDS.get(artefact_name(fmt, quantize), NEEDS.get(fmt, ()))
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        extra = "openvino" if fmt == "openvino" else "export"
        raise DeployError(f"{fmt} needs {', '.join(missing)}: pip install 'tlstudio[{extra}]'")
    inputs = RunInputs.load(run_dir, data_dir)
    if inputs.thresholds is not None and fmt == "openvino" and quantize == "int8":  # (top-1 accuracy control)
        raise DeployError("openvino int8 is made for single-label models only so far; take openvino float32")
    inputs.test_images()  # read first: a data folder that is not there fails before any conversion
    target = Path(out) if out else inputs.run_dir / files.EXPORT / artefact_name(fmt, quantize)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target.parent)
    staging = atomic.staging_folder(target.parent, f".staging-{target.name}-{os.getpid()}-")
    warnings: list[str] = []
    try:
        model_path = staging / FILE_NAMES[fmt]
        name = artefact_name(fmt, quantize)
        _check(stop, name)
        try:
            _convert(inputs, fmt, quantize, model_path, uint8_io, warnings, max_accuracy_drop)
        except DeployError:
            raise
        except Exception as err:
            raise DeployError(
                f"{artefact_name(fmt, quantize)}: conversion failed: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}"
            ) from err
        _check(stop, name)
        verification = verify(inputs, fmt, quantize, model_path, min_agreement, max_accuracy_drop, stop=stop)
        if not verification.passed:
            raise DeployError(
                f"{artefact_name(fmt, quantize)} did not verify: {verification.rule}; "
                "nothing was put in place"
            )
        (staging / files.LABELS).write_text("\n".join(inputs.labels) + "\n", encoding="utf-8")
        if inputs.thresholds is not None:  # multi-label: each label's decision threshold beside them
            atomic.write_json(
                staging / files.THRESHOLDS, dict(zip(inputs.labels, inputs.thresholds, strict=True))
            )
        description = describe(inputs, fmt, quantize, uint8_io, asdict(verification), FILE_NAMES[fmt])
        add_client(staging, fmt)
        atomic.write_json(staging / DESCRIPTION, description)
        put_in_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DeployResult(fmt, quantize, target, verification, warnings=warnings)


def verify(
    inputs,
    fmt: str,
    quantize: str,
    model_path: Path,
    min_agreement: float,
    max_accuracy_drop: float,
    stop: threading.Event | None = None,
) -> Verification:
    """Score the artefact in a fresh process with its runtime; compare with the Keras model."""
    import numpy as np

    from tlstudio.core.deploy.encoded_probes import compare_encoded, encoded_probes

    images, truth = inputs.test_images()
    reference = inputs.reference_probabilities(images)
    with tempfile.TemporaryDirectory(prefix="tlstudio-check-") as tmp:
        npz, out = Path(tmp) / "images.npz", Path(tmp) / "out.json"
        arrays: dict[str, np.ndarray] = {"images": images}
        probes: list[tuple[Path, str, np.ndarray]] = []
        if fmt == "saved_model" and len(images):
            probes = encoded_probes(images, Path(tmp))
            arrays["encoded_paths"] = np.asarray([str(path) for path, _, _ in probes])
            arrays |= {f"upright_{i}": pixels for i, (_, _, pixels) in enumerate(probes)}
        np.savez(npz, **arrays)
        command = [sys.executable, "-m", "tlstudio.core.deploy.runtime_check", fmt, str(model_path)]
        command += [str(npz), str(out)]
        if fmt == "tfjs":  # TensorFlow.js in Node
            from tlstudio.core.deploy import tfjs_format

            command = tfjs_format.check_command(model_path / tfjs_format.MODEL_FILE, images, Path(tmp), out)
        returncode, stderr = _run_cancellable(command, stop, artefact_name(fmt, quantize))
        if returncode != 0:
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            raise DeployError(f"{artefact_name(fmt, quantize)}: its runtime could not run it: {last}")
        measured = json.loads(out.read_text())
    from tlstudio.core.deploy.agreement import decision_agreement, top1_agreement  # (NumPy: not at --help)

    probs = np.asarray(measured["probabilities"], np.float32).reshape(reference.shape)
    if inputs.thresholds is not None:  # multi-label: every label decision, at its threshold
        found = decision_agreement(probs, reference, truth, inputs.labels, inputs.thresholds)
    else:
        found = top1_agreement(probs, reference, truth, inputs.labels)
    agreement, accuracy, reference_accuracy, per_class, what = found
    latencies = np.asarray(measured["latency_ms"])
    integer = quantize in ("int8", "dynamic")  # tflite int8/dynamic, openvino int8
    if integer:
        passed = reference_accuracy - accuracy <= max_accuracy_drop + 1e-9
        rule = f"{what}accuracy drop {reference_accuracy - accuracy:+.3f} (allowed ≤ {max_accuracy_drop:.3f})"
    else:
        passed = agreement >= min_agreement
        rule = f"{what or 'top-1 '}agreement {agreement:.4f} (required ≥ {min_agreement:.4f})"
    if fmt == "tflite":  # the labels inside the file, as the runtime's process read them back
        from tlstudio.core.deploy.tflite_metadata import compare_labels

        labels_passed, labels_rule = compare_labels(measured, inputs.labels, inputs.thresholds)
        passed, rule = passed and labels_passed, f"{rule}; {labels_rule}"
    encoded_difference = 0.0
    if probes:
        encoded_passed, encoded_rule, encoded_difference = compare_encoded(
            probes, measured.get("encoded", [])
        )
        passed = passed and encoded_passed
        rule = f"{rule}; {encoded_rule}"
    return Verification(
        images=len(truth),
        agreement=agreement,
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        accuracy_change=accuracy - reference_accuracy,
        max_probability_difference=float(np.abs(probs - reference).max()) if len(probs) else 0.0,
        latency_ms_median=float(np.median(latencies)),
        latency_ms_p95=float(np.percentile(latencies, 95)),
        throughput_images_per_second=float(measured["throughput_images_per_second"]),
        size_bytes=artefact_size(model_path),
        per_class=per_class,
        passed=passed,
        rule=rule,
        encoded_files=len(probes),
        encoded_max_probability_difference=encoded_difference,
    )


def _convert(
    inputs, fmt, quantize, path: Path, uint8_io: bool, warnings: list[str], max_drop=MAX_ACCURACY_DROP
) -> None:
    from tlstudio.core.deploy import converters

    calibration = None
    if quantize == "int8":  # tflite and openvino
        calibration = inputs.calibration_images(CALIBRATION_IMAGES)
        if len(calibration) < FEW_CALIBRATION_IMAGES:
            warnings.append(
                f"int8 calibrated on {len(calibration)} training images; a few hundred "
                "give steadier quantisation ranges"
            )
    if fmt == "saved_model":
        converters.serving_saved_model(inputs.model, path, inputs.labels, inputs.image_size)
    elif fmt == "onnx":
        converters.to_onnx(inputs.model, path, inputs.image_size)
    elif fmt == "tfjs":
        from tlstudio.core.deploy import tfjs_format

        tfjs_format.convert(inputs.model, path, inputs.image_size)
    elif fmt == "openvino":
        from tlstudio.core.deploy import openvino_format

        openvino_format.convert(inputs, path, calibration, max_drop)
    else:
        converters.to_tflite(
            inputs.model,
            path,
            inputs.image_size,
            quantize,
            calibration,
            uint8_io,
            labels=inputs.labels,
            thresholds=inputs.thresholds,
        )


def _run_cancellable(
    command: list[str], stop: threading.Event | None, what: str, timeout: float = 1800.0
) -> tuple[int, str]:
    """Run a process to its end, or kill it when ``stop`` is set (``DeployCancelled``) or at the
    timeout; returns its exit code and standard error."""
    with tempfile.TemporaryFile(mode="w+") as err:  # a pipe could fill up while nobody reads it
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if (stop is not None and stop.is_set()) or time.monotonic() > deadline:
                process.kill()
                process.wait()
                _check(stop, what)
                raise DeployError(f"{what}: its runtime did not finish within {timeout:.0f} s")
            time.sleep(0.05)
        err.seek(0)
        return process.returncode, err.read()
