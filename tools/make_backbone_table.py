"""Regenerate tlstudio/core/backbone/backbone_table.json: default/minimum input size and parameter counts.

These facts need a model to be built (random weights, no download), which takes minutes for all of
``keras.applications``, so they are measured here once and shipped. The list of backbones itself is
always read from Keras at run time; tests check that this table covers it.

Run:  python tools/make_backbone_table.py
"""

from __future__ import annotations

import gc
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras

from tlstudio.core.backbone.registry import keras_application_functions

OUT = Path(__file__).resolve().parent.parent / "tlstudio" / "core" / "backbone" / "backbone_table.json"


def minimum_size(fn) -> int:
    """Smallest square input Keras accepts, read from its own error message."""
    try:
        keras.backend.clear_session()
        fn(include_top=False, weights=None, input_shape=(16, 16, 3))
    except ValueError as err:
        found = re.search(r"at least (\d+)x(\d+)", str(err))
        if found:
            return max(32, int(found.group(1)))
    return 32


def main() -> None:
    table = json.loads(OUT.read_text()) if OUT.is_file() and "--fresh" not in sys.argv else {}
    for name, fn in sorted(keras_application_functions().items()):
        if name in table:
            continue
        keras.backend.clear_session()
        full = fn(include_top=True, weights=None)
        default_size = int(full.input_shape[1] or 224)  # MobileNetV3 accepts any size; 224 is its default
        del full
        gc.collect()
        keras.backend.clear_session()
        base = fn(include_top=False, weights=None, input_shape=(default_size, default_size, 3))
        table[name] = {
            "default_size": default_size,
            "min_size": minimum_size(fn),
            "params": int(base.count_params()),
            "layers": len(base.layers),
        }
        del base
        gc.collect()
        print(name, table[name], flush=True)
        OUT.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
