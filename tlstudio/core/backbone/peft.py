"""Parameter-efficient fine-tuning of the backbone layers a freeze plan makes trainable: LoRA or BitFit.

``lora``: Keras 3's own ``enable_lora(rank)`` on every ``Dense`` and ``EinsumDense`` layer (a
transformer's attention and MLP projections) of the trainable blocks; their kernels and biases and
every other backbone weight frozen, the head trains. After the phase ``merge_lora`` folds
``A·B·alpha/rank`` into each kernel and removes the LoRA variables, so checkpoints, WiSE-FT, the saved
``.keras`` and every export hold one plain model with the merged weights.

``bitfit``: only the biases and the normalisation scales and offsets (LayerNorm, BatchNorm γ/β) of
the trainable blocks train, plus the head; BatchNorm stays in inference mode (its moving statistics
do not change) while its γ and β learn.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import keras

from tlstudio.core.backbone.freezing import _backbone_of, _count
from tlstudio.core.backbone.kinds import LORA_FAMILIES  # noqa: F401 (where it was defined)
from tlstudio.core.backbone.layer_tree import named_leaf_layers
from tlstudio.core.settings import LORA_RANK

_NORMS = (keras.layers.LayerNormalization, keras.layers.BatchNormalization, keras.layers.GroupNormalization)
_BITFIT_NAMES = ("bias", "beta", "gamma")
_FROZEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model: variables apply_peft froze


class PeftError(ValueError):
    """The backbone has no layer the chosen PEFT mode can train."""


@dataclass(frozen=True)
class PeftSummary:
    """What a PEFT mode did to one phase: its mode, layers touched and parameter counts."""

    mode: str
    layers: int  # layers wrapped with LoRA, or layers whose biases/norms train
    trainable: int  # the model's trainable parameters with PEFT (the head's included)
    full_fine_tune: int  # the same phase's trainable parameters without PEFT
    rank: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as run.json's ``peft`` holds it."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "layers": self.layers,
            "trainable_params": self.trainable,
            "full_fine_tune_params": self.full_fine_tune,
            "share": round(self.trainable / self.full_fine_tune, 6) if self.full_fine_tune else None,
        }
        if self.rank is not None:
            out["rank"] = self.rank
        return out

    def describe(self) -> str:
        """One line for the log and the report."""
        what = (
            f"LoRA rank {self.rank} on {self.layers} projection layer(s)"
            if self.mode == "lora"
            else (f"BitFit: biases and norms of {self.layers} layer(s)")
        )
        return f"{what}: {self.trainable:,} parameters train, {self.full_fine_tune:,} in a full fine-tune"


def lora_refusal(spec) -> str | None:
    """Why ``--peft lora`` cannot run on this backbone, known from its spec before anything is built.

    Args:
        spec: the run's ``BackboneSpec``.

    Returns:
        A one-line reason for a convolutional backbone (no Dense/EinsumDense projection to wrap), a
        SavedModel (its layers are not Keras layers); None where LoRA applies or only building tells
        (a user's ``.keras`` file: the run refuses then).
    """
    if spec.has_projections is False:
        return (
            f"--peft lora needs a transformer backbone (Dense/EinsumDense projections to wrap); "
            f"{spec.name} ({spec.family}) has none: use --peft bitfit or --peft none"
        )
    return None


def apply_peft(model, mode: str, rank: int = LORA_RANK) -> PeftSummary:
    """Restrict the layers a freeze plan made trainable to LoRA adapters or to biases and norms.

    Call after ``apply_freeze_plan`` and before ``compile``; ``merge_lora`` after the phase.

    Args:
        model: the classifier (holding a layer named ``backbone``) with a freeze plan applied.
        mode: ``"lora"`` or ``"bitfit"``.
        rank: the LoRA rank.

    Returns:
        The layers touched and the trainable parameters, with and without PEFT.

    Raises:
        PeftError: no trainable backbone layer the mode can train (LoRA on a CNN).

    Example:
        >>> apply_freeze_plan(model, FreezePlan("top", 2))  # doctest: +SKIP
        >>> apply_peft(model, "lora").describe()  # doctest: +SKIP
    """
    full = _count(model.trainable_weights)
    leaves = _trainable_leaves(model)
    backbone = _backbone_of(model)
    before = list(backbone.trainable_weights)
    if mode == "lora":
        targets = [x for x in leaves if isinstance(x, (keras.layers.Dense, keras.layers.EinsumDense))]
        if not targets:
            raise PeftError(
                "--peft lora found no Dense or EinsumDense layer in the backbone's trainable blocks "
                "(a convolutional backbone): use --peft bitfit or --peft none"
            )
        for layer in targets:
            if not layer.lora_enabled:
                layer.enable_lora(rank)
        adapters = {id(v) for x in targets for v in (x.lora_kernel_a, x.lora_kernel_b)}
        _freeze(model, [v for v in before if id(v) not in adapters])
        return PeftSummary("lora", len(targets), _count(model.trainable_weights), full, rank)
    if mode == "bitfit":
        kept = {id(v) for x in leaves for v in x.trainable_weights if _bitfit_variable(x, v)}
        if not kept:
            raise PeftError("--peft bitfit found no bias or normalisation weight in the trainable blocks")
        _freeze(model, [v for v in before if id(v) not in kept])
        for layer in leaves:
            if isinstance(layer, keras.layers.BatchNormalization):
                _inference_mode(layer)
        touched = sum(any(id(v) in kept for v in x.weights) for x in leaves)
        return PeftSummary("bitfit", touched, _count(model.trainable_weights), full)
    raise ValueError(f"unknown PEFT mode {mode!r} (lora or bitfit)")


def _freeze(model, variables: list) -> None:
    """Freeze these variables (not their layers), remembering them for ``merge_lora`` to undo."""
    for var in variables:
        var.trainable = False
    _FROZEN.setdefault(model, []).extend(variables)


def merge_lora(model) -> int:
    """Fold every LoRA adapter of the backbone into its kernel and remove the adapter's variables;
    undo BitFit's per-variable freezing. The model is a plain one again (same weights list as before
    ``apply_peft``), computing what it computed with the adapters.

    Returns:
        The number of layers merged.
    """
    merged = 0
    for layer in _all_leaves(_backbone_of(model)):
        if getattr(layer, "lora_enabled", False):
            value = keras.ops.convert_to_numpy(layer.kernel)  # the property: kernel + A·B·alpha/rank
            a, b = layer.lora_kernel_a, layer.lora_kernel_b
            a.assign(keras.ops.zeros(a.shape, a.dtype))  # a stale traced function now adds nothing
            b.assign(keras.ops.zeros(b.shape, b.dtype))
            layer._untrack_variable(a)
            layer._untrack_variable(b)
            layer._tracker.unlock()
            layer.lora_kernel_a = layer.lora_kernel_b = None
            layer._tracker.lock()
            layer.lora_enabled = False
            layer.lora_rank = layer.lora_alpha = None
            layer._kernel.assign(value)
            merged += 1
        if "call" in vars(layer):  # BitFit's inference-mode BatchNorm
            del layer.call
    for var in _FROZEN.pop(model, []):
        var.trainable = True  # variable-level flags back: the layers' own flags rule again
    for attr in ("train_function", "test_function", "predict_function"):
        setattr(model, attr, None)  # traced with the adapters: trace again
    return merged


def _trainable_leaves(model) -> list:
    """The backbone's innermost layers that the freeze plan left trainable."""
    backbone = _backbone_of(model)
    if not backbone.trainable:
        return []
    out: list[Any] = []
    for _, layer, _ in named_leaf_layers(backbone):
        if layer.trainable:
            out.extend(x for x in _all_leaves(layer) if x.trainable and x.weights)
    return out


def _all_leaves(layer) -> list:
    """``layer`` itself when it holds no layers, else every innermost layer inside it."""
    inner = [x for x in layer._flatten_layers(include_self=False, recursive=True) if not x._layers]
    return inner or [layer]


def _bitfit_variable(layer, var) -> bool:
    name = var.path.rsplit("/", 1)[-1]
    return name == "bias" or (isinstance(layer, _NORMS) and name in _BITFIT_NAMES)


def _inference_mode(layer) -> None:
    """A BatchNorm layer whose γ/β train while it normalises with its moving statistics (Keras runs
    a trainable BatchNorm in training mode under ``fit``; this instance's call always says not)."""
    call = type(layer).call

    def inference_call(inputs, training=None, mask=None):
        return call(layer, inputs, training=False, mask=mask)

    layer.call = inference_call
