"""TensorFlow loaded in the background after the window is up, and the sample's backbone built
there: worker jobs of the main window (the core does the TensorFlow work)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

from tlstudio.gui.worker import tensorflow_loaded


def build_sample_backbone(folder: Path) -> Path:
    """Worker job: the sample's small CNN (the core builds it)."""
    from tlstudio.core.data.sample import demo_backbone

    return demo_backbone(folder)


def load_tensorflow():
    """Worker job: import TensorFlow quietly, name the devices, read the backbone registry.

    Returns:
        (the device in words, the backbone specs, [(GPU index, GPU in words), …]).
    """
    from tlstudio.native_preload import preload_native_libraries

    if not os.environ.get("TLSTUDIO_NO_PRELOAD"):  # (benchmarks/bench_startup.py compares both)
        preload_native_libraries()  # the slowest native part without the GIL: the window keeps painting
    from tlstudio.quiet_tf import import_tensorflow_quietly

    # TensorFlow and Keras leave a few hundred thousand long-lived objects. Every full garbage
    # collection walks them all, holding the GIL for about 200 ms: a visible freeze of the window,
    # while they load and again whenever one lands during a training run (it did, while an export
    # was written). So no collection while they load, and afterwards they are frozen out of it.
    # The core modules are imported only in here: each imports TensorFlow (imported above this,
    # they loaded it with collections on: stalls of 40–160 ms, growing with the heap).
    gc.disable()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.001)  # hand the GIL back to the painting thread more often meanwhile
    try:
        import_tensorflow_quietly()
        from tlstudio.core.backbone.registry import list_backbones
        from tlstudio.core.data.pipeline import warm_up_tf_data
        from tlstudio.core.training.devices import describe_device, enable_memory_growth, list_gpus

        tensorflow_loaded()  # (the worker ran jobs one at a time until now: a second import would break)
        enable_memory_growth()  # before any GPU work: runs share the GPU with other programs
        warm_up_tf_data()
        gpus = list_gpus()
        return describe_device("auto", gpus), list_backbones(), [(g.index, g.describe()) for g in gpus]
    finally:
        sys.setswitchinterval(switch)
        gc.freeze()
        gc.enable()
