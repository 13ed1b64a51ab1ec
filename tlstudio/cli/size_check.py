"""The image size asked for, checked against the backbone's spec before any work (`train`, `compare`)."""

from __future__ import annotations


def image_size_problem(settings) -> str | None:
    """Why the backbone cannot take ``settings.image_size``, asked of its spec before any work: a fixed
    input (a ViT preset's position embeddings, a model file's input layer) or a minimum size (Keras
    Applications). The range any backbone may take is the settings' own check.

    Args:
        settings: the run's ``TrainSettings``.

    Returns:
        A one-line reason naming the backbone's size, or None: the size suits it, no size was given,
        or the backbone is not known here (building it says why, as without a size).
    """
    size = settings.image_size
    if size is None:
        return None
    from pathlib import Path

    from tlstudio.core.backbone.registry import resolve_backbone
    from tlstudio.core.backbone.sources import model_file_facts

    try:
        spec = resolve_backbone(settings.backbone)
    except Exception:  # an unknown name, a broken file: the run says so, with or without --image-size
        return None
    if spec.fixed_size and size != spec.fixed_size:
        return (
            f"{spec.name} takes only {spec.fixed_size}×{spec.fixed_size} images (its position embeddings "
            f"are fixed), not --image-size {size}"
        )
    if spec.brings_own_size:  # a model file: its input layer may fix the size
        fixed = model_file_facts(Path(spec.source))[1]
        if fixed is not None and fixed != size:
            return (
                f"{spec.source} takes only {fixed}×{fixed} images (its input is fixed), not --image-size "
                f"{size}: leave --image-size out"
            )
        return None
    if spec.knows_min_size and size < spec.min_size:
        return (
            f"{spec.name} needs images of at least {spec.min_size}×{spec.min_size}, not --image-size {size}"
        )
    return None
