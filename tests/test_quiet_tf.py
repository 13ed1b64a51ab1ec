"""The CLI's TensorFlow is quiet: no start-up notices, no deprecation notices about TF's internals."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
from tlstudio.quiet_tf import import_tensorflow_quietly
import_tensorflow_quietly()
from tensorflow.python.util import deprecation

@deprecation.deprecated(None, "use something newer")
def old_api():
    return 1

old_api()
print("ok")
"""


def test_tensorflow_loads_without_start_up_or_deprecation_notices():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    assert "deprecated" not in done.stderr and "cpu_feature_guard" not in done.stderr, done.stderr
