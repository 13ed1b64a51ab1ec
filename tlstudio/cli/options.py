"""The options `train` and `compare` share, and the one converter from parsed arguments to TrainSettings."""

from __future__ import annotations

import argparse
from pathlib import Path

from tlstudio.cli.size_check import image_size_problem  # noqa: F401 (where the commands import it from)

DATA_HELP = (
    "a data folder (one sub-folder per class) or a labels CSV (path,labels; several labels or none: "
    "multi-label)"
)


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `train` and `compare`."""
    from tlstudio.core.settings import (  # pure data
        CLASS_WEIGHTS,
        MIXED_PRECISION,
        OPTIMIZERS,
        PEFT_MODES,
        PREPROCESSING,
        PROBE_FEATURES,
        SMALL_FOLDER_VAL,
        SMALL_VAL_PER_CLASS,
        STRATEGIES,
        defaults,
    )

    d = defaults()  # every default and its help text come from the settings dataclasses
    given = option_defaults()

    p.add_argument(
        "--weights",
        default=given["weights"],
        metavar="imagenet|none|FILE",
        help=f"backbone weights (default {d.weights}; none = from scratch, the baseline)",
    )
    p.add_argument("--image-size", type=int, metavar="N", help="square input size (default: the backbone's)")
    p.add_argument(
        "--epochs",
        type=int,
        default=given["epochs"],
        metavar="N",
        help=f"phase 1 epochs when the head trains with the optimizer ({d.epochs}); the default linear "
        "probe is fitted to convergence instead",
    )
    p.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=given["fine_tune_epochs"],
        metavar="N",
        help="phase 2 epochs (default: sized by the number of training images, see docs/training.md's "
        "recipe table; 0 = no fine-tuning phase)",
    )
    p.add_argument(
        "--fine-tune-lr-decay",
        type=float,
        default=given["fine_tune_lr_decay"],
        metavar="F",
        help=f"phase 2: each lower block learns at F times the rate of the block above "
        f"({d.fine_tune_lr_decay}; 1 = same rate)",
    )
    p.add_argument(
        "--fine-tune-blocks",
        type=int,
        default=given["fine_tune_blocks"],
        metavar="N",
        help=f"top blocks unfrozen in phase 2 ({d.fine_tune_blocks})",
    )
    p.add_argument(
        "--batch-size",
        type=batch_size_option,
        default=given["batch_size"],
        metavar="N|auto",
        help=f"images per step (auto: {d.batch_size}, halved and the run started again when memory runs "
        "out; a number of your own is kept, and running out of memory then ends the run with advice)",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        default=given["learning_rate"],
        metavar="X",
        help=f"the head's rate ({d.learning_rate:g}); phase 2 uses {d.fine_tune_lr_factor:g}× it",
    )
    p.add_argument("--optimizer", default=given["optimizer"], choices=OPTIMIZERS)
    p.add_argument(
        "--freeze",
        default=given["freeze"],
        metavar="PLAN",
        help="all (default: feature extraction, then fine-tuning), none, top:N, first:P%%",
    )
    p.add_argument(
        "--train-batchnorm",
        action="store_true",
        help="let BatchNorm layers train (default: frozen, in inference mode)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=given["dropout"],
        metavar="F",
        help=f"head dropout ({d.head.dropout})",
    )
    p.add_argument(
        "--dense",
        default=given["dense"],
        metavar="UNITS",
        help="extra dense layers in the head, e.g. 256,128 (none)",
    )
    p.add_argument("--no-augment", action="store_true", help="turn off flip/rotation augmentation")
    p.add_argument(
        "--no-feature-cache",
        action="store_true",
        help="recompute the frozen backbone every epoch (default: with the backbone frozen and no "
        "augmentation, its features are computed once and cached in the run folder)",
    )
    p.add_argument(
        "--no-interpolate",
        action="store_true",
        help="skip WiSE-FT: by default the exported weights are the mix of the linear probe's and the "
        "fine-tuned ones with the lowest validation loss",
    )
    p.add_argument(
        "--soup",
        type=int,
        default=given["soup"],
        metavar="N",
        help="greedy checkpoint soup: keep the N best fine-tune epochs by validation loss and average "
        f"those that do not raise it, before WiSE-FT, e.g. 3 (0: off; default {d.soup_checkpoints}: "
        "it gained nothing measurable in the benchmarks)",
    )
    p.add_argument(
        "--small-folder-val",
        choices=SMALL_FOLDER_VAL,
        default=given["small_folder_val"],
        help="a folder whose validation split would hold fewer than "
        f"{SMALL_VAL_PER_CLASS} images a class: train on them too (train) or hold them out (keep); "
        f"default {d.small_folder_val}",
    )
    p.add_argument(
        "--peft",
        choices=PEFT_MODES,
        default=given["peft"],
        help="fine-tune phase: whole top blocks (none), LoRA adapters on a transformer's projections "
        f"(lora), or only biases and norms (bitfit); default {d.peft}",
    )
    p.add_argument(
        "--probe-features",
        choices=PROBE_FEATURES,
        default=given["probe_features"],
        help="what the linear probe reads of a transformer: the last block's class token (last), or "
        "DINOv2's linear4 (last4: the last 4 blocks' class tokens and the mean patch token; KerasHub "
        f"ViT, probe-only runs); default {d.probe_features} (= last)",
    )
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (text, digits, maps)")
    p.add_argument(
        "--zoom",
        type=float,
        default=given["zoom"],
        metavar="F",
        help=f"random zoom augmentation ({d.augmentation.zoom:g})",
    )
    p.add_argument(
        "--contrast",
        type=float,
        default=given["contrast"],
        metavar="F",
        help=f"random contrast augmentation ({d.augmentation.contrast:g})",
    )
    p.add_argument(
        "--class-weights",
        default=given["class_weights"],
        choices=CLASS_WEIGHTS,
        help="auto: balanced weights when classes are imbalanced past 5:1",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=given["patience"],
        metavar="N",
        help=f"early stopping patience ({d.early_stopping_patience})",
    )
    p.add_argument("--cut-at", metavar="LAYER", help="model files: the layer whose output are the features")
    p.add_argument(
        "--preprocessing",
        choices=PREPROCESSING,
        help="override the input preprocessing (model files default to none: the model takes 0-255 pixels)",
    )
    p.add_argument("--manifest", type=Path, metavar="FILE", help="reuse a split manifest")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="empty an existing output folder first (without it, a folder that holds anything is refused: "
        "a run never mixes its files with an earlier one's)",
    )
    p.add_argument(
        "--mixed-precision",
        nargs="?",
        const="on",
        default=given["mixed_precision"],
        choices=MIXED_PRECISION,
        help="float16 compute, float32 weights and output (auto: on for GPUs with tensor cores, "
        "compute capability 7.0 or more; off on a CPU). Without a value: on",
    )
    p.add_argument(
        "--device",
        default=given["device"],
        type=device_option,
        metavar="auto|cpu|gpu:N",
        help="where to train (auto: the first GPU, else the CPU; see `tlstudio devices`)",
    )
    p.add_argument(
        "--strategy",
        default=given["strategy"],
        choices=STRATEGIES,
        help="mirrored: data-parallel over every local GPU (tf.distribute.MirroredStrategy); "
        "multiworker: over several machines, one command per machine with TF_CONFIG set "
        "(the chief, or worker 0, records the run and exports; see docs/training.md)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="fit temperature scaling (multi-label: Platt scaling per label) on the validation split "
        "and bake it into the export",
    )


def option_defaults() -> dict[str, object]:
    """The default of every training and split option, by its argparse name, read from ``core.settings``:
    what ``add_training_options`` and ``add_split_options`` declare, and what ``train --project`` and
    ``train --resume`` compare the given options with.

    Returns:
        ``{dest: default}``, e.g. ``{"epochs": 20, "batch_size": "auto", "no_flip": False, …}``.
    """
    from tlstudio.core.settings import SEED, TEST_FRACTION, VAL_FRACTION, defaults

    d = defaults()
    return {
        "weights": d.weights,
        "image_size": d.image_size,
        "epochs": d.epochs,
        "fine_tune_epochs": d.fine_tune_epochs,
        "fine_tune_lr_decay": d.fine_tune_lr_decay,
        "fine_tune_blocks": d.fine_tune_blocks,
        "batch_size": "auto" if d.auto_batch_size else d.batch_size,
        "learning_rate": d.learning_rate,
        "optimizer": d.optimizer,
        "freeze": d.freeze.preset,
        "train_batchnorm": d.freeze.train_batchnorm,
        "dropout": d.head.dropout,
        "dense": ",".join(str(units) for units in d.head.dense_units),
        "no_augment": False,
        "no_feature_cache": not d.feature_cache,
        "no_interpolate": not d.interpolate,
        "small_folder_val": d.small_folder_val,
        "soup": d.soup_checkpoints,
        "peft": d.peft,
        "probe_features": d.probe_features,
        "no_flip": not d.augmentation.flip,
        "zoom": d.augmentation.zoom,
        "contrast": d.augmentation.contrast,
        "class_weights": d.class_weights,
        "patience": d.early_stopping_patience,
        "cut_at": d.cut_at,
        "preprocessing": d.preprocessing,
        "manifest": None,
        "overwrite": False,
        "mixed_precision": d.mixed_precision,
        "device": d.device,
        "strategy": d.strategy,
        "calibrate": d.calibrate,
        "val": VAL_FRACTION,
        "test": TEST_FRACTION,
        "seed": SEED,
    }


def add_scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--deep",
        action="store_true",
        help="decode every image fully (slower) instead of header and structure checks",
    )


def add_split_options(p: argparse.ArgumentParser) -> None:
    """The split's fractions and seed (defaults from ``core.settings``, as ``SplitConfig``'s)."""
    from tlstudio.core.settings import SEED, TEST_FRACTION, VAL_FRACTION  # (no numpy: `--help` stays fast)

    p.add_argument(
        "--val", type=float, default=VAL_FRACTION, metavar="F", help=f"validation fraction ({VAL_FRACTION})"
    )
    p.add_argument(
        "--test", type=float, default=TEST_FRACTION, metavar="F", help=f"test fraction ({TEST_FRACTION})"
    )
    p.add_argument("--seed", type=int, default=SEED, help=f"split seed, also seeds training ({SEED})")


def settings_from_args(args: argparse.Namespace, backbone: str | None = None):
    from tlstudio.core.freeze_plan import FreezePlan
    from tlstudio.core.settings import Augmentation, HeadSettings, TrainSettings, defaults, parse_dense_units

    plan = FreezePlan.parse(args.freeze)
    if args.train_batchnorm:
        plan = FreezePlan(plan.preset, plan.value, train_batchnorm=True)
    dense = parse_dense_units(args.dense)
    augment = (
        Augmentation(flip=False, rotation=0.0, zoom=args.zoom, contrast=args.contrast)
        if args.no_augment
        else Augmentation(flip=not args.no_flip, zoom=args.zoom, contrast=args.contrast)
    )
    return TrainSettings(
        backbone=backbone or args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        cut_at=args.cut_at,
        preprocessing=args.preprocessing,
        head=HeadSettings(dropout=args.dropout, dense_units=dense),
        freeze=plan,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        batch_size=defaults().batch_size if args.batch_size == "auto" else args.batch_size,
        auto_batch_size=args.batch_size == "auto",
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_blocks=args.fine_tune_blocks,
        fine_tune_lr_decay=args.fine_tune_lr_decay,
        early_stopping_patience=args.patience,
        augmentation=augment,
        class_weights=args.class_weights,
        seed=args.seed,
        val_fraction=args.val,
        test_fraction=args.test,
        mixed_precision=args.mixed_precision,
        device=args.device,
        calibrate=args.calibrate,
        feature_cache=not args.no_feature_cache,
        interpolate=not args.no_interpolate,
        small_folder_val=args.small_folder_val,
        soup_checkpoints=args.soup,
        peft=args.peft,
        probe_features=args.probe_features,
        strategy=args.strategy,
    )


def batch_size_option(text: str) -> int | str:
    """``--batch-size``: ``auto`` or a whole number of at least 1."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number or auto, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def device_option(text: str) -> str:
    """``--device``: auto, cpu or gpu:N."""
    import re

    from tlstudio.core.settings import DEVICE_PATTERN

    text = text.lower()
    if not re.fullmatch(DEVICE_PATTERN, text):
        raise argparse.ArgumentTypeError(f"auto, cpu or gpu:N (see `tlstudio devices`), not {text!r}")
    return text
