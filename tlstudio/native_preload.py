"""Load TensorFlow's native libraries without holding Python's GIL, before ``import tensorflow``.

The window loads TensorFlow in a worker thread. An import loads each extension module with the
GIL held: ``_pywrap_tensorflow_internal`` alone (its C++ static initialisers) held it for about
300 ms here, and the window froze for that long. Calling the C library's ``dlopen`` through
ctypes releases the GIL for the call, so
the same work runs while the GUI thread keeps painting; the later import finds each library
already loaded and only runs its (short) module set-up. ``benchmarks/bench_startup.py`` measures both
(``TLSTUDIO_NO_PRELOAD=1``): worst stall after the first paint 183–205 ms preloaded, 451–515 ms not.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import sys
import time

# What `import tensorflow, keras` loads itself, biggest first: TensorFlow's shared libraries and the
# extension modules of tensorflow/python (not its op libraries, which TensorFlow registers itself:
# loading one twice fails), and h5py's. Not matplotlib: dlopen-ing its extension modules ahead of
# their import aborts the interpreter at exit.
PATTERNS = (
    "tensorflow/libtensorflow_framework.so*",
    "tensorflow/libtensorflow_cc.so*",
    "tensorflow/python/lib_pywrap_tensorflow_common.so",
    "tensorflow/python/_pywrap_tensorflow_internal.so",
    "tensorflow/python/*/_pywrap_*.so",
    "tensorflow/python/*/*/_pywrap_*.so",
    "tensorflow/python/*/*/*/_pywrap_*.so",
    "h5py.libs/*.so*",
)


def native_libraries(site: str) -> list[str]:
    """The shared libraries of ``PATTERNS`` under ``site``, in load order.

    Args:
        site: the site-packages folder holding TensorFlow.

    Returns:
        Paths, in load order.
    """
    found: list[str] = []
    for pattern in PATTERNS:
        found += [p for p in sorted(glob.glob(os.path.join(site, pattern))) if p not in found]
    return found


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
