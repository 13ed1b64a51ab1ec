"""Sample clients: a small ``predict_<format>.py IMAGE`` beside every artefact that classifies an image
file with that artefact's runtime, Pillow and numpy alone (the way Lobe shipped starter apps).

The scripts are real files in ``clients/`` (linted and tested like the rest), copied as they are: each
reads the input size from ``model.json`` beside it and the labels from ``labels.txt`` (TFLite: from
inside ``model.tflite``), so nothing is generated per run. TF.js gets an HTML page instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SOURCES = Path(__file__).resolve().parent / "clients"
CLIENTS = {
    "saved_model": "predict_saved_model.py",
    "tflite": "predict_tflite.py",
    "onnx": "predict_onnx.py",
    "openvino": "predict_openvino.py",
    "tfjs": "index.html",  # a page for the browser (TensorFlow.js); serve the folder, pick an image
}


def add_client(folder: Path, fmt: str) -> Path:
    """Copy ``fmt``'s sample client into an artefact's ``folder``.

    Args:
        folder: the artefact's (staging) folder.
        fmt: one of ``CLIENTS``.

    Returns:
        The client's path in ``folder``.
    """
    target = Path(folder) / CLIENTS[fmt]
    shutil.copyfile(SOURCES / CLIENTS[fmt], target)
    return target
