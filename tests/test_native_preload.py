"""Preloading TensorFlow's native libraries (GIL released) must leave TensorFlow and Keras working
and the interpreter exiting cleanly; a fresh process, as the app does it."""

from __future__ import annotations

import subprocess
import sys

CODE = """
from tlstudio.native_preload import preload_native_libraries
loaded, _ = preload_native_libraries()
import tensorflow as tf, keras
assert float(tf.reduce_sum(tf.ones(3))) == 3.0
keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), include_top=False)
import matplotlib.ft2font, h5py
print("loaded", loaded)
"""


def test_tensorflow_works_after_the_preload_and_the_process_exits_cleanly():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Fatal Python error" not in done.stderr
    loaded = int(done.stdout.split("loaded")[-1])
    assert loaded > 5 or not sys.platform.startswith("linux")


LOADER = """
import gc, sys
from tlstudio.gui.tf_loader import load_tensorflow
assert "tensorflow" not in sys.modules
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
device, specs, gpus = load_tensorflow()
assert "tensorflow" in sys.modules and specs and gc.isenabled()
print("collections", collections.count(2), "frozen", gc.get_freeze_count())
"""


def test_the_window_loads_tensorflow_with_no_garbage_collection_and_freezes_its_objects():
    """Each full collection while TensorFlow's objects pile up stalls the window longer (40–160 ms here,
    when the core's modules imported TensorFlow before the collector was paused)."""
    done = subprocess.run([sys.executable, "-c", LOADER], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    words = done.stdout.split()
    assert words[words.index("collections") + 1] == "0", done.stdout
    assert int(words[words.index("frozen") + 1]) > 100_000, done.stdout
