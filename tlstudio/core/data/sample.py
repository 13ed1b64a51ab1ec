"""The bundled sample: a small CNN backbone built offline, and the settings the demo and the app's
sample project train it with (one source for both)."""

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
    keras.Model(inputs, x, name="demo_cnn").save(path)  # (sources.SAMPLE_MODEL_NAME names it)
    return path


def sample_settings(backbone_file: str | Path):
    """The sample's recipe: the small CNN trained from its random start (every layer, no download),
    no flips (digits are not mirror-symmetric)."""
    from tlstudio.core.freeze_plan import FreezePlan
    from tlstudio.core.settings import Augmentation, TrainSettings

    return TrainSettings(
        backbone=str(backbone_file),
        epochs=30,
        fine_tune_epochs=0,
        batch_size=32,
        learning_rate=3e-3,
        freeze=FreezePlan("none"),
        early_stopping_patience=5,
        augmentation=Augmentation(flip=False),
    )
