"""Import TensorFlow without its start-up chatter on the terminal.

TensorFlow's C++ side prints absl/oneDNN/CUDA-probe lines to file descriptor 2 while it loads,
before any log-level setting applies. The CLI imports it here with descriptor 2 redirected to a
temporary file, then passes on every line that is not one of those known notices. Later C++ log
lines below FATAL are hidden too (``TF_CPP_MIN_LOG_LEVEL=3``; an error that matters is raised as a
Python exception), and so are TensorFlow's deprecation notices about its own internals (tf2onnx
calls TF1 APIs). Set ``TF_CPP_MIN_LOG_LEVEL=0`` to see everything when debugging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} [\d:. ]+\d+ "
    r"(port\.cc|cudart_stub\.cc|cuda_platform\.cc|cuda_executor\.cc|gpu_device\.cc|cpu_feature_guard\.cc)"
    r"|To enable the following instructions:)"
)
log = logging.getLogger(__name__)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and probe its devices) with the known start-up notices filtered out."""
    if "tensorflow" in sys.modules:
        return
    import time

    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":
                with contextlib.suppress(ImportError, AttributeError):  # a private switch: may go away
                    from tensorflow.python.util import deprecation

                    deprecation._PRINT_DEPRECATION_WARNINGS = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _NOISE.match(line):
                    print(line, file=sys.stderr)
    log.info(
        "TensorFlow %s loaded in %.1f s; GPUs: %s",
        tf.__version__,
        time.perf_counter() - started,
        ", ".join(gpu.name for gpu in gpus) or "none",
    )
