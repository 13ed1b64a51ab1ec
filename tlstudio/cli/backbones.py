"""`tlstudio backbones`: the registry."""

from __future__ import annotations

import argparse
import json

from tlstudio.cli.common import quiet_tensorflow


def add_parser(sub) -> None:
    """Register ``backbones``."""
    p = sub.add_parser("backbones", help="list the Keras Applications (or KerasHub) backbones")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument(
        "--kerashub",
        action="store_true",
        help="list the KerasHub vision presets instead (ViT, DINOv2, …; needs tlstudio[kerashub])",
    )


def run(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    if getattr(args, "kerashub", False):
        return _kerashub_presets(args)
    from tlstudio.core.backbone.registry import list_backbones

    specs = list_backbones()
    if args.json:
        print(json.dumps([spec.to_dict() for spec in specs], indent=2))
        return 0
    print(f"{'name':<20} {'family':<20} {'params':>12} {'top-1':>6} {'input':>6} {'min':>4}  preprocessing")
    for spec in specs:
        params = f"{spec.params:,}" if spec.params else "?"
        top1 = f"{spec.imagenet_top1:.1%}" if spec.imagenet_top1 else "—"
        print(
            f"{spec.name:<20} {spec.family:<20} {params:>12} {top1:>6} {spec.default_size:>6} "
            f"{spec.min_size:>4}  {spec.preprocessing}"
        )
    print(
        "\ntop-1: ImageNet accuracy where the Keras documentation publishes it. "
        "params: without the ImageNet classification top. Also accepted as --backbone: a .keras/.h5 "
        "model file, a SavedModel folder, or a KerasHub preset (`tlstudio backbones --kerashub`)."
    )
    return 0


def _kerashub_presets(args: argparse.Namespace) -> int:
    from tlstudio.core.backbone import kerashub

    if not kerashub.available():
        print(f"error: KerasHub is not installed: {kerashub.INSTALL_HINT}")
        return 1
    presets = kerashub.list_presets()
    if args.json:
        print(json.dumps(presets, indent=2))
        return 0
    print(f"{'name':<48} {'family':<22} {'params':>14}")
    for p in presets:
        params = f"{p['params']:,}" if p["params"] else "?"
        print(f"{p['name']:<48} {p['family']:<22} {params:>14}")
    print(
        "\nDownloaded by KerasHub into its cache when first used (needs network). Offline: a preset "
        "folder (save_to_preset) works as --backbone FOLDER."
    )
    return 0
