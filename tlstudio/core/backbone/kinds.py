"""The kinds of backbone and what each can do: code asks these capabilities, never the kind itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BackboneKind = Literal["keras", "kerashub", "file", "savedmodel"]

# KerasHub families whose blocks are built of the Dense/EinsumDense projections LoRA wraps (``--peft lora``)
LORA_FAMILIES = ("ViT", "DINOv2", "DINOv3", "DeiT", "Swin")


@dataclass(frozen=True)
class KindCapabilities:
    """What every backbone of one kind can do (each kind states every field: none has a default).

    Attributes:
        chooses_weights: the user picks its starting weights (pretrained or none) in the app.
        takes_weights_file: a weights file (``--weights FILE``) may replace its pretrained weights.
        brings_own_weights: it starts from weights it carries (a preset, a model file, a SavedModel),
            not from a separate ImageNet weights file.
        downloads_weights_file: its ImageNet weights are a file Keras downloads into its cache
            (``tlstudio weights NAME`` fetches it ahead).
        downloads_preset: its weights come with a KerasHub preset, fetched into KerasHub's cache.
        brings_own_size: its input size is its model file's own (no image size to choose).
        knows_min_size: ``min_size`` is the model's real limit (elsewhere it is only a floor).
        reinitialises: weights "none" builds it with fresh weights (the from-scratch baseline), so a
            skeleton can be built without its pretrained weights and given trained ones after.
        origin: where it comes from, in words; ``{source}`` is its file, folder or handle.
    """

    chooses_weights: bool
    takes_weights_file: bool
    brings_own_weights: bool
    downloads_weights_file: bool
    downloads_preset: bool
    brings_own_size: bool
    knows_min_size: bool
    reinitialises: bool
    origin: str


CAPABILITIES: dict[str, KindCapabilities] = {
    "keras": KindCapabilities(
        chooses_weights=True,
        takes_weights_file=True,
        brings_own_weights=False,
        downloads_weights_file=True,
        downloads_preset=False,
        brings_own_size=False,
        knows_min_size=True,
        reinitialises=True,
        origin="Keras Applications",
    ),
    "kerashub": KindCapabilities(
        chooses_weights=True,
        takes_weights_file=False,
        brings_own_weights=True,
        downloads_weights_file=False,
        downloads_preset=True,
        brings_own_size=False,
        knows_min_size=True,
        reinitialises=True,
        origin="KerasHub preset",
    ),
    "file": KindCapabilities(
        chooses_weights=False,
        takes_weights_file=False,
        brings_own_weights=True,
        downloads_weights_file=False,
        downloads_preset=False,
        brings_own_size=True,
        knows_min_size=False,
        reinitialises=True,
        origin="model file {source}",
    ),
    "savedmodel": KindCapabilities(
        chooses_weights=False,
        takes_weights_file=False,
        brings_own_weights=True,
        downloads_weights_file=False,
        downloads_preset=False,
        brings_own_size=False,
        knows_min_size=False,
        reinitialises=False,
        origin="SavedModel {source}",
    ),
}
