"""Every rank candidate checked before any of them is built: a wrong name, a missing or broken model
file, an image size it cannot take, or ImageNet weights that are neither cached nor downloadable are
all said at once, in seconds, instead of after the first candidates' minutes of work.

``candidate_problems`` only reads (names, files, Keras' cache, one HEAD request per missing weights
file); ``fetch_candidate_weights`` then downloads what is missing, as ``train`` does before it claims
a run folder, so a download that fails also fails before any candidate's features are computed.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from tlstudio.core.backbone.sources import BackboneError
from tlstudio.core.cancel import Cancelled

Problem = tuple[str, str]  # (the candidate as given, why it cannot be ranked)
PROBE_TIMEOUT = 10.0  # seconds to wait for the weights' server to answer a HEAD request


class CandidateProblems(BackboneError):
    """Candidates that cannot be ranked, found before any work; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(problem_line(c, r) for c, r in problems))
        self.problems = list(problems)


def problem_line(candidate: str, reason: str) -> str:
    """One line for a bad candidate: the reason, led by the candidate unless the reason names it."""
    return reason if candidate in reason else f"{candidate}: {reason}"


def candidate_problems(
    backbones: list[str], *, weights: str = "imagenet", image_size: int | None = None
) -> list[Problem]:
    """Why each candidate could not be ranked, checked before any is built.

    Checked for each: the name resolves (Keras Applications, KerasHub preset, model file, SavedModel
    folder or hub handle); a model file exists and holds a model config Keras could read; the image
    size suits it (its minimum, a fixed input, sizes its ImageNet weights exist for); the weights
    setting fits it; ImageNet weights are in Keras' cache or their server answers.

    Args:
        backbones: names or files, as for training.
        weights: their weights (``imagenet``, ``none`` or a weights file for Keras Applications).
        image_size: the input size for all (None: each one's own).

    Returns:
        (candidate, reason) for each bad candidate, in the given order; empty when all can be ranked.
    """
    problems = []
    for name in backbones:
        try:
            reason = _problem(name, weights, image_size)
        except BackboneError as err:
            reason = str(err)
        if reason:
            problems.append((name, reason.strip().splitlines()[0]))
    return problems


def fetch_candidate_weights(
    backbones: list[str],
    *,
    weights: str = "imagenet",
    image_size: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Problem]:
    """Download the ImageNet weights (Keras Applications) or preset weights (KerasHub) that are not
    on this machine yet, before any candidate's work. Call after ``candidate_problems`` found none.

    Args:
        backbones: the candidates.
        weights: their weights setting (nothing to fetch unless ``imagenet``).
        image_size: the input size for all (some weights files depend on it).
        stop: set to cancel (``core.cancel.Cancelled``; the part downloaded is kept for the next try).
        progress: told each download in words.

    Returns:
        (candidate, reason) for each whose weights could not be had.
    """
    if weights != "imagenet":
        return []
    from tlstudio.core.backbone import weights as keras_weights
    from tlstudio.core.backbone.registry import offline_message, resolve_backbone

    say = progress or (lambda _: None)
    problems = []
    for name in backbones:
        try:
            spec = resolve_backbone(name)
            if spec.downloads_weights_file:
                wanted = keras_weights.imagenet_weights_file(spec.name, image_size)
                if not wanted.is_cached():
                    say(f"{name}: downloading its ImageNet weights ({wanted.name})")
                    try:
                        keras_weights.download(wanted, stop=stop)
                    except keras_weights.WeightsCancelled:
                        raise Cancelled("rank cancelled") from None
                    except keras_weights.WeightsError as err:
                        cause = keras_weights.WeightsError(str(err).split(". Offline")[0])
                        raise BackboneError(offline_message(spec.name, cause)) from err
            elif spec.downloads_preset:
                from tlstudio.core.backbone.kerashub_fetch import fetch_preset_weights, preset_weights_cached

                if not preset_weights_cached(spec.source):
                    say(f"{name}: downloading the preset's weights")
                    fetch_preset_weights(spec.source)
        except BackboneError as err:
            problems.append((name, str(err).strip().splitlines()[0]))
        if stop is not None and stop.is_set():
            raise Cancelled("rank cancelled")
    return problems


def _problem(name: str, weights: str, image_size: int | None) -> str | None:
    """Why this candidate cannot be ranked, or None (a ``BackboneError`` says it too)."""
    from tlstudio.core.backbone.registry import resolve_backbone

    path = Path(name).expanduser()
    if not path.exists() and _looks_like_a_path(name):
        return f"{path}: no such file or folder"
    spec = resolve_backbone(name)  # an unknown name, a broken file, neither file nor SavedModel
    size = image_size or spec.default_size
    if spec.brings_own_size:  # a model file: its config and its fixed input, if any
        if why := _model_file_problem(Path(spec.source)):
            return why
        if image_size and spec.default_size != image_size and _fixed_input(Path(spec.source)):
            return (
                f"takes {spec.default_size}×{spec.default_size} images only (its input is fixed), "
                f"not {image_size}: leave the image size to each candidate"
            )
        return None
    if not spec.reinitialises:  # a SavedModel or hub handle: loaded, with its own weights only
        if weights in ("none", "None", ""):
            return "a SavedModel / TF Hub backbone cannot be re-initialised: rank it with its own weights"
        return _savedmodel_problem(spec.source)
    if not spec.takes_weights_file:  # a KerasHub preset: its own weights, or none
        if weights not in ("imagenet", "none", "None", ""):
            return "a KerasHub preset carries its own weights: rank with weights imagenet or none"
        if spec.fixed_size and size != spec.fixed_size:
            return f"takes only {spec.fixed_size} px images (its position embeddings are fixed)"
        return None
    if spec.knows_min_size and size < spec.min_size:  # a Keras Applications model
        return f"needs images of at least {spec.min_size}×{spec.min_size}, not {size}"
    if weights not in ("imagenet", "none", "None", "") and not Path(weights).is_file():
        return f"weights file {weights} not found"
    if weights == "imagenet":
        return _imagenet_weights_problem(spec.name, image_size)
    return None


def _looks_like_a_path(name: str) -> bool:
    """A name meant as a file or folder (a separator, ~, or a model file's suffix), not a registry name."""
    return (
        "/" in name
        or "\\" in name
        or name.startswith("~")
        or name.lower().endswith((".keras", ".h5", ".hdf5"))
    ) and not ("://" in name or name.startswith("kerashub:"))


def _model_file_problem(path: Path) -> str | None:
    """What ``model_file_problem`` does not read: the model's config itself (the zip is whole and its
    config parses; an ``.h5`` file holds a model, not weights alone)."""
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                if (bad := archive.testzip()) is not None:
                    return f"{path} is damaged ({bad} fails its checksum)"
                config = json.loads(archive.read("config.json"))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            return f"{path} is not a readable .keras model ({err})"
        if not isinstance(config, dict) or "class_name" not in config:
            return f"{path} holds no Keras model config"
        return None
    try:
        import h5py

        with h5py.File(path, "r") as f:
            if not f.attrs.get("model_config"):
                return f"{path} holds weights only, no model: give a .keras file or a whole-model .h5"
    except (OSError, ValueError) as err:
        return f"{path} is not a readable HDF5 model ({err})"
    return None


def _fixed_input(path: Path) -> bool:
    from tlstudio.core.backbone.sources import model_file_facts

    return model_file_facts(path)[1] is not None


def _savedmodel_problem(source: str) -> str | None:
    """A hub handle is fetched (or found in the cache) and a SavedModel loaded and read, not run, as
    ``train`` does before it claims a run folder: one whose functions reach outside it is refused."""
    from tlstudio.core.backbone.savedmodel import SavedModelLayer, resolve_hub_handle
    from tlstudio.core.backbone.sources import is_hub_handle

    folder = resolve_hub_handle(source) if is_hub_handle(source) else Path(source)
    SavedModelLayer(str(folder))  # raises BackboneError: unloadable, or unsafe operations
    return None


def _imagenet_weights_problem(name: str, image_size: int | None) -> str | None:
    """None when the file is cached or its server answers; else what to do (the offline message)."""
    from tlstudio.core.backbone import weights as keras_weights
    from tlstudio.core.backbone.registry import offline_message

    try:
        wanted = keras_weights.imagenet_weights_file(name, image_size)
    except keras_weights.WeightsError as err:  # no ImageNet weights at this size, say
        return str(err)
    if wanted.is_cached():
        return None
    try:
        request = urllib.request.Request(wanted.url, method="HEAD", headers={"User-Agent": "tlstudio"})
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT):
            return None
    except urllib.error.HTTPError as err:
        cause: Exception = Exception(f"{wanted.url}: HTTP {err.code} {err.reason}")
    except (urllib.error.URLError, OSError) as err:
        cause = Exception(f"{wanted.url}: {getattr(err, 'reason', err)}")
    return offline_message(name, cause)
