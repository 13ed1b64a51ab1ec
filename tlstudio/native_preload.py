"""Load TensorFlow's native libraries without holding Python's GIL, before ``import tensorflow``.

The window loads TensorFlow in a worker thread. An import loads each extension module with the
GIL held: ``_pywrap_tensorflow_internal`` alone (its C++ static initialisers) held it for about
300 ms here, and matplotlib's FreeType module (Keras imports it) about 100 ms — the window froze
for that long. Calling the C library's ``dlopen`` through ctypes releases the GIL for the call, so
the same work runs while the GUI thread keeps painting; the later import finds each library
already loaded and only runs its (short) module set-up. Measured in ``benchmarks/bench_startup.py``.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import sys
import time

# Packages whose compiled modules `import tensorflow, keras` loads (most first: TensorFlow's own).
PACKAGES = ("tensorflow", "h5py.libs", "h5py", "matplotlib", "kiwisolver", "PIL", "ml_dtypes", "optree")
FIRST = ("libtensorflow_framework.so", "libtensorflow_cc.so", "_pywrap_tensorflow_internal.so")


def native_libraries(site: str) -> list[str]:
    """The shared libraries of ``PACKAGES`` under ``site``, TensorFlow's core ones first.

    Args:
        site: the site-packages folder holding TensorFlow.

    Returns:
        Paths, in load order.
    """
    found: list[str] = []
    for package in PACKAGES:
        found += sorted(glob.glob(os.path.join(site, package, "**", "*.so*"), recursive=True))
    rank = {name: i for i, name in enumerate(FIRST)}
    return sorted(found, key=lambda p: min((i for n, i in rank.items() if n in p), default=len(FIRST)))


def preload_native_libraries() -> tuple[int, float]:
    """``dlopen`` TensorFlow's libraries with the GIL released (Linux and macOS; else nothing).

    Returns:
        (libraries loaded, seconds taken). Never raises: a library that does not load here is
        simply loaded by the import, as without this.
    """
    started = time.perf_counter()
    if sys.platform.startswith("win") or "tensorflow" in sys.modules:
        return 0, 0.0
    try:
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or spec.origin is None:
            return 0, 0.0
        libc = ctypes.CDLL(None)  # a CDLL function call releases the GIL (PyDLL would not)
        dlopen = libc.dlopen
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    except (OSError, AttributeError, ValueError):
        return 0, 0.0
    flags = sys.getdlopenflags()  # the flags the import uses, so it finds the same handle
    loaded = 0
    for path in native_libraries(os.path.dirname(os.path.dirname(spec.origin))):
        if dlopen(os.fsencode(path), flags):
            loaded += 1
    return loaded, time.perf_counter() - started
