"""DINOv2's "linear4" features: the class tokens of a transformer's last 4 blocks and its mean patch token.

``probe_features="last4"`` replaces a KerasHub ViT backbone by ``BlockTokensBackbone``: the same
layers (and weights), called block by block, each of the last blocks' outputs put through the
encoder's final layer norm (as DINOv2's ``get_intermediate_layers(norm=True)`` does), their class
tokens concatenated with the average of the last block's patch tokens. The backbone's output is that
vector, so the cached features the probe is fitted on are exactly what the saved and exported model
computes. It saves as the KerasHub backbone's own config plus the number of blocks, and is rebuilt
from them (the inner ViT layers' configs do not all load back on their own).
"""

from __future__ import annotations

import json

import keras

from tlstudio.core.backbone.sources import BackboneError
from tlstudio.core.settings import LINEAR4_BLOCKS

LAST4_FAMILIES = ("KerasHub ViT",)  # KerasHub families whose blocks last4 can tap


@keras.saving.register_keras_serializable(package="tlstudio")
class BlockTokensBackbone(keras.Model):
    """A KerasHub ViT backbone whose output is the linear4 feature vector.

    Args:
        hub_backbone: a ``keras_hub.models.ViTBackbone`` with a class token (or its serialized form).
        blocks: how many of the last blocks give their class token (fewer when the ViT has fewer).
        name: the model's name (a TL Studio classifier finds its backbone by "backbone").

    Example:
        >>> backbone = BlockTokensBackbone(build_backbone(spec))  # (None, (4 + 1) * hidden_dim)
    """

    def __init__(self, hub_backbone, blocks: int = LINEAR4_BLOCKS, name: str = "backbone", **kwargs):
        if isinstance(hub_backbone, dict):
            hub_backbone = keras.saving.deserialize_keras_object(hub_backbone)
        inputs, outputs = _vit_taps(hub_backbone, blocks)
        kwargs.pop("trainable", None)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self._hub_json = json.dumps(keras.saving.serialize_keras_object(hub_backbone))
        self._blocks = blocks

    def get_config(self) -> dict:
        return {"name": self.name, "hub_backbone": json.loads(self._hub_json), "blocks": self._blocks}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def tapped_blocks(hub_backbone, blocks: int = LINEAR4_BLOCKS) -> int:
    """How many blocks a ``BlockTokensBackbone`` of ``hub_backbone`` taps: ``blocks``, or every block
    of a shallower ViT."""
    return min(blocks, len(hub_backbone.get_layer("vit_encoder").encoder_layers))


def _vit_taps(hub_backbone, blocks: int):
    patches = hub_backbone.get_layer("vit_patching_and_embedding")
    encoder = hub_backbone.get_layer("vit_encoder")
    inputs = keras.Input(tuple(hub_backbone.input.shape[1:]), name="images")
    x = encoder.dropout(patches(inputs))
    outputs = []
    for block in encoder.encoder_layers:
        x = block(x)
        outputs.append(x)
    normed = [encoder.layer_norm(out) for out in outputs[-tapped_blocks(hub_backbone, blocks) :]]
    tokens = int(normed[-1].shape[1])
    features = [
        keras.layers.Flatten(name=f"class_token_{i}")(
            keras.layers.Cropping1D((0, tokens - 1), name=f"class_token_crop_{i}")(out)
        )
        for i, out in enumerate(normed, start=1)
    ]
    patch_tokens = keras.layers.Cropping1D((1, 0), name="patch_tokens")(normed[-1])
    features.append(keras.layers.GlobalAveragePooling1D(name="mean_patch_token")(patch_tokens))
    return inputs, keras.layers.Concatenate(name="linear4_features")(features)


def choose_probe_features(settings, spec) -> tuple[str, str]:
    """Which features the probe (and the model's head) reads, and why: the one rule of ``probe_features``.

    Args:
        settings: the run's ``TrainSettings``.
        spec: its backbone's ``BackboneSpec``.

    Returns:
        ("last" or "last4", a one-line reason).

    Raises:
        BackboneError: ``last4`` asked of a backbone without class-token blocks, or with fine-tuning.
    """
    asked = settings.probe_features
    if asked == "last":
        return "last", "asked: the last block's features"
    if asked == "auto":
        return "last", "auto: the last block's features (last4 measured +0.018 and +0.001: not a rule yet)"
    if spec.family not in LAST4_FAMILIES or not spec.class_token:
        raise BackboneError(
            f"--probe-features last4 needs a KerasHub ViT backbone with a class token; {spec.name} "
            f"({spec.family}) has none: use last"
        )
    if settings.fine_tune_epochs != 0:
        raise BackboneError(
            "--probe-features last4 is for probe-only runs so far: add --fine-tune-epochs 0, or use last"
        )
    return "last4", f"asked: class tokens of the last {LINEAR4_BLOCKS} blocks and the mean patch token"


def probe_features_problem(settings) -> str | None:
    """Why ``settings.probe_features`` cannot be used with its backbone, asked before any work.

    Returns:
        A one-line reason, or None (it can, or the backbone is unknown here: building it says why).
    """
    if settings.probe_features != "last4":
        return None
    from tlstudio.core.backbone.registry import resolve_backbone

    try:
        spec = resolve_backbone(settings.backbone)
    except Exception:  # an unknown name, a broken file: the run says so
        return None
    try:
        choose_probe_features(settings, spec)
    except BackboneError as err:
        return str(err)
    return None
