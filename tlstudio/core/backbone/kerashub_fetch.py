"""Fetching a named KerasHub preset's weights into KerasHub's cache: before a run claims its folder,
and from the app's *Download preset* button with progress and Cancel (kagglehub resumes the file)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tlstudio.core.backbone.kerashub import fetch_message, hub_id, import_kerashub, is_preset_folder
from tlstudio.core.backbone.sources import BackboneError
from tlstudio.core.cancel import Cancelled


class PresetDownloadCancelled(BackboneError, Cancelled):
    """A preset download stopped on request (KerasHub's downloader resumes the file next time)."""


def fetch_preset_weights(source: str) -> None:
    """Download a named preset's weights into KerasHub's cache now (a local folder: nothing to do),
    so that a run without network fails before it claims its folder.

    Args:
        source: a preset name or handle (a ``BackboneSpec.source``).

    Raises:
        BackboneError: the weights are neither cached nor downloadable (what to do).
    """
    source = hub_id(source)
    if is_preset_folder(Path(source).expanduser()):
        return
    import_kerashub()
    from keras_hub.src.utils import preset_utils as presets

    try:
        try:
            presets.get_file(source, presets.MODEL_WEIGHTS_FILE)
        except FileNotFoundError:  # a sharded preset: its index, then every shard
            for shard in _shards(presets.get_file(source, presets.SHARDED_MODEL_WEIGHTS_CONFIG_FILE)):
                presets.get_file(source, shard)
    except PresetDownloadCancelled:
        raise
    except Exception as err:
        raise BackboneError(fetch_message(source, err)) from err


def download_preset(
    source: str,
    progress: Callable[[int, int | None], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """``fetch_preset_weights`` with its progress reported and a way to cancel it (the app's
    *Download preset* button).

    Args:
        source: a preset name or handle.
        progress: called with (bytes so far, bytes in the file or None) as the download goes.
        stop: set it to cancel; the part downloaded so far stays for KerasHub to resume.

    Raises:
        PresetDownloadCancelled: ``stop`` was set.
        BackboneError: the preset cannot be fetched (what to do).
    """
    with download_progress(progress or (lambda n, total: None), stop or threading.Event()):
        fetch_preset_weights(source)


_swap_lock = threading.Lock()
_swaps: dict[str, Any] = {"count": 0, "original": None}
_this_thread = threading.local()  # the reporter of the download this thread runs, if any


@contextlib.contextmanager
def download_progress(progress: Callable[[int, int | None], None], stop: threading.Event) -> Iterator[None]:
    """While inside: the progress of the KerasHub downloads this thread runs (kagglehub draws them
    with tqdm and offers no callback) goes to ``progress``, and a set ``stop`` ends the current file
    mid-way.

    Written by hand because kagglehub has no progress hook: while any such download runs, its
    module's ``tqdm`` is a dispatcher that gives each thread its own reporter (and other threads
    kagglehub's own bar); the last one out puts ``tqdm`` back.
    """
    from kagglehub import clients

    class Reporter:
        def __init__(self, total: int | None = None, initial: int = 0, **_: object):
            self.n, self.total = initial, total
            progress(self.n, self.total)

        def update(self, count: int) -> None:
            if stop.is_set():
                raise PresetDownloadCancelled("download cancelled; the next one resumes it")
            self.n += count
            progress(self.n, self.total)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

    with _swap_lock:
        if _swaps["count"] == 0:
            _swaps["original"] = original = clients.tqdm

            def dispatch(*args, **kwargs):
                reporter = getattr(_this_thread, "reporter", None)
                return (reporter or original)(*args, **kwargs)

            clients.tqdm = dispatch
        _swaps["count"] += 1
    outer = getattr(_this_thread, "reporter", None)
    _this_thread.reporter = Reporter
    try:
        yield
    finally:
        _this_thread.reporter = outer
        with _swap_lock:
            _swaps["count"] -= 1
            if _swaps["count"] == 0:
                clients.tqdm = _swaps["original"]


def preset_weights_cached(source: str) -> bool | None:
    """Whether a preset's weights are on this machine (a local folder, or in kagglehub's cache);
    None when that cannot be told without the network (an hf:// handle).

    Args:
        source: a preset name, handle or folder.
    """
    source = hub_id(source)
    if is_preset_folder(Path(source).expanduser()):
        return True
    import_kerashub()
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle
    from keras_hub.src.utils.preset_utils import (
        BUILTIN_PRESETS,
        MODEL_WEIGHTS_FILE,
        SHARDED_MODEL_WEIGHTS_CONFIG_FILE,
    )

    handle = BUILTIN_PRESETS[source]["kaggle_handle"] if source in BUILTIN_PRESETS else source
    if not handle.startswith("kaggle://"):
        return None
    try:
        model = parse_model_handle(handle.removeprefix("kaggle://"))
    except ValueError:
        return None
    if getattr(model, "version", None) is None:  # the current version is asked of the network
        return None
    cache = Cache()
    if cache.load_from_cache(model, MODEL_WEIGHTS_FILE) is not None:
        return True
    index = cache.load_from_cache(model, SHARDED_MODEL_WEIGHTS_CONFIG_FILE)  # the index and every shard
    return index is not None and all(
        cache.load_from_cache(model, shard) is not None for shard in _shards(index)
    )


def _shards(index_file: str | Path) -> list[str]:
    weight_map = json.loads(Path(index_file).read_text())["weight_map"]
    return sorted({f for v in weight_map.values() for f in (v if isinstance(v, list) else [v])})
