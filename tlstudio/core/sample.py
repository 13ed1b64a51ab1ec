"""The bundled sample: a small CNN backbone built offline for the demo and the sample project."""

from __future__ import annotations

from pathlib import Path


def demo_backbone(out: Path) -> Path:
    """A small CNN saved as a .keras file, to show the 'your own model as backbone' path offline."""
    import keras

    path = out / "demo_backbone.keras"
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, x, name="demo_cnn").save(path)
    return path
