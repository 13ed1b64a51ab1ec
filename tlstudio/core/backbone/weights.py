"""ImageNet weights on request: which file Keras wants, a resumable checked download into Keras'
cache, or a local copy of that file put there.

Keras downloads weights itself, silently and all at once, the first time a model is built with
``weights="imagenet"``. Here the file is named first (Keras is asked by building the model with its
downloader swapped for one that only records what it was asked for), then fetched with progress,
cancel and resume (HTTP ``Range`` on a ``.part`` file), checked against the hash Keras ships, and
renamed into ``KERAS_HOME/models``, where Keras finds it and downloads nothing. Written by hand on
``urllib`` because ``keras.utils.get_file`` has no cancel, no resume and no progress callback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import logging
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tlstudio.core import atomic
from tlstudio.core.backbone.sources import BackboneError, is_hdf5
from tlstudio.core.cancel import Cancelled

log = logging.getLogger(__name__)
CHUNK = 1 << 16
STALL_SECONDS = 30.0  # a server silent this long (or trickling: STALL_BYTES) is given up on
STALL_BYTES = 16 << 10  # a body bringing fewer bytes than this in STALL_SECONDS has stalled
MAX_BYTES = 2 << 30  # the largest Keras Applications file is ~1.4 GB (ConvNeXtXLarge)


class WeightsError(BackboneError):
    """The weights could not be fetched or did not check out; what to do is in the message."""


class WeightsCancelled(WeightsError, Cancelled):
    """The download was cancelled; the part already fetched is kept, and the next try resumes."""


@dataclass(frozen=True)
class WeightsFile:
    """One weights file Keras looks for in its cache."""

    url: str
    name: str
    file_hash: str | None  # as Keras ships it: SHA-256 (64 hex digits) or MD5 (32)
    cache_dir: Path  # KERAS_HOME/models
    size: int | None = None  # bytes, when known: the download is bounded by it

    @property
    def path(self) -> Path:
        """Where Keras reads it."""
        return self.cache_dir / self.name

    @property
    def part(self) -> Path:
        """The partial download, kept between tries."""
        return self.cache_dir / (self.name + ".part")

    def is_cached(self) -> bool:
        """Whether the file is there and checks out."""
        return self.path.is_file() and self.checks_out(self.path)

    def checks_out(self, file: Path) -> bool:
        """Whether ``file`` is this one: its hash matches Keras', or, where Keras ships no hash, it
        is at least an HDF5 weights file (as every Keras Applications file is)."""
        if self.file_hash is not None:
            return file_digest(file, self.file_hash) == self.file_hash
        return is_hdf5(file)

    @property
    def check(self) -> str:
        """How a file is checked, in words (what ``checks_out`` tests)."""
        return "checksum matches" if self.file_hash else "an HDF5 file; Keras ships no checksum for this one"


class _Asked(Exception):
    def __init__(self, kwargs: dict) -> None:
        super().__init__("asked")
        self.kwargs = kwargs


_ASKING = threading.Lock()  # one question at a time: swapping Keras' downloader is process-wide


@contextlib.contextmanager
def _keras_downloads_recorded() -> Iterator[None]:
    """Keras' downloader swapped for one that raises ``_Asked`` with what it was asked for — in this
    thread only: a run building a model in another thread meanwhile downloads as usual."""
    from keras.src.utils import file_utils

    with _ASKING:
        original, asking = file_utils.get_file, threading.get_ident()

        def record(*args, **kwargs):
            if threading.get_ident() != asking:
                return original(*args, **kwargs)
            raise _Asked({**dict(zip(("fname", "origin"), args, strict=False)), **kwargs})

        file_utils.get_file = record
        try:
            yield
        finally:
            file_utils.get_file = original


def keras_cache_dir() -> Path:
    """``KERAS_HOME/models`` (``~/.keras/models`` by default), as Keras' downloader uses it."""
    from keras.src.backend import config

    home = os.environ.get("KERAS_HOME") or config.keras_home()  # Keras reads KERAS_HOME at import
    return Path(os.path.expanduser(home)) / "models"


def imagenet_weights_file(name: str, image_size: int | None = None) -> WeightsFile:
    """The file Keras would download for ``name`` with ImageNet weights (nothing is downloaded).

    Args:
        name: a Keras Applications name, e.g. ``MobileNetV3Small``.
        image_size: the input size the run uses (some models pick their file by size).

    Returns:
        The file's URL, name, hash and cache folder.

    Raises:
        WeightsError: the model has no ImageNet weights.
    """
    from tlstudio.core.backbone.registry import keras_application_functions

    fn = keras_application_functions().get(name)
    if fn is None:
        raise WeightsError(f"{name} is not a Keras Applications model: only those have ImageNet weights here")

    kwargs: dict = {"weights": "imagenet", "include_top": False}
    if image_size:
        kwargs["input_shape"] = (image_size, image_size, 3)
    try:
        with _keras_downloads_recorded(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras' note on non-default sizes; the run says it
            fn(**kwargs)
    except _Asked as asked:
        a = asked.kwargs
        url = str(a.get("origin") or "")
        fname = str(a.get("fname") or url.rsplit("/", 1)[-1])
        return WeightsFile(url, fname, a.get("file_hash") or a.get("md5_hash"), keras_cache_dir())
    except Exception as err:  # a size the weights do not exist for, say
        raise WeightsError(f"{name} with ImageNet weights: {err}") from err
    raise WeightsError(f"{name} loaded ImageNet weights without asking for a file")


def file_digest(path: Path, like: str) -> str:
    """SHA-256 or MD5 of a file, whichever ``like`` (a hash of that kind) is."""
    digest = hashlib.md5() if len(like) == 32 else hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    weights: WeightsFile,
    progress: Callable[[int, int | None], None] | None = None,
    stop: threading.Event | None = None,
    timeout: float = STALL_SECONDS,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Fetch the file into Keras' cache, resuming a ``.part`` left by an earlier try.

    The download is bounded: never more than the file's size (``WeightsFile.size`` when known, else
    what the server declares in ``Content-Length``) and never more than ``max_bytes``; a body that
    runs past its bound is refused and its part removed. A server that stops sending, or trickles
    fewer than ``STALL_BYTES`` in ``timeout`` seconds, is given up on with the part kept (the next
    try resumes from it), as a cancel or a dropped connection keeps it.

    Args:
        weights: what to fetch (``imagenet_weights_file``).
        progress: called with (bytes so far, total bytes or None) as data arrives.
        stop: set it to cancel; the part is kept for the next try.
        timeout: seconds to wait for the server to answer, for any one read, and for each
            ``STALL_BYTES`` of the body.
        max_bytes: the most a weights file may be (when neither its size nor the server says).

    Returns:
        The checked file in the cache.

    Raises:
        WeightsCancelled: ``stop`` was set.
        WeightsError: no network, a server error, a stalled or oversized body, no room on the disk,
            or a file that does not match its hash.
    """
    if weights.is_cached():
        log.debug("%s is already in the cache: %s", weights.name, weights.path)
        return weights.path
    weights.cache_dir.mkdir(parents=True, exist_ok=True)
    bound = min(weights.size, max_bytes) if weights.size else max_bytes
    have = weights.part.stat().st_size if weights.part.is_file() else 0
    if have > bound:  # left by a download that ran away (before downloads were bounded): useless
        weights.part.unlink(missing_ok=True)
        have = 0
    request = urllib.request.Request(weights.url, headers={"User-Agent": "tlstudio"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    log.info(
        "fetching %s from %s into %s%s",
        weights.name,
        weights.url,
        weights.path,
        f" from byte {have}" * bool(have),
    )
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part is already whole
            return _finish(weights)
        raise WeightsError(f"could not download {weights.url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise WeightsError(
            f"could not download {weights.url}: {reason}. Offline, fetch that file on a machine with "
            f"network and give it with `tlstudio weights NAME --from FILE` (in the app: Backbone → "
            f"Weights file…), or put it in {weights.cache_dir}"
        ) from err
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file: start the part again
        total = _declared_total(weights, response.headers.get("Content-Length"), have, bound)
        if total is not None:
            bound = total
            _room_for(weights, total - have)
        _receive(weights, response, resumed, have, bound, total, progress, stop, timeout)
    return _finish(weights)


def _declared_total(weights: WeightsFile, length: str | None, have: int, bound: int) -> int | None:
    """The whole file's size as the server declares it (None when it does not), refused beyond
    ``bound`` before a byte is written."""
    try:
        total = have + int(length) if length is not None else None
    except ValueError:
        total = None
    if total is not None and total < have:  # a negative length: as good as none
        total = None
    if total is not None and total > bound:
        raise WeightsError(
            f"the server offers {total:,} bytes for {weights.name}, more than {bound:,}: not "
            f"{'the file Keras wants' if weights.size else 'a weights file'}; nothing was downloaded"
        )
    return total


def _room_for(weights: WeightsFile, needed: int) -> None:
    """Refuse before writing when the cache's disk cannot hold what is still to come."""
    try:
        free = shutil.disk_usage(weights.cache_dir).free
    except OSError:
        return
    if free < needed:
        raise WeightsError(
            f"{weights.name} needs {needed / 1e6:,.1f} MB more but {weights.cache_dir} has "
            f"{free / 1e6:,.1f} MB free: make room and try again"
        )


def _receive(weights, response, resumed, have, bound, total, progress, stop, timeout) -> None:
    """Append the body to the part, within ``bound`` bytes, giving up on a stalled server."""
    window_start, window_have = time.monotonic(), have
    try:
        with weights.part.open("ab" if resumed else "wb") as out:
            while True:
                if stop is not None and stop.is_set():
                    raise WeightsCancelled(f"download of {weights.name} cancelled at {have:,} bytes")
                block = response.read1(CHUNK)  # what has arrived: a trickle cannot hold it forever
                if not block:
                    break
                if have + len(block) > bound:
                    out.close()
                    weights.part.unlink(missing_ok=True)
                    raise WeightsError(
                        f"the server sent more than {bound:,} bytes for {weights.name} "
                        f"({'its size' if weights.size or total else 'the most a weights file may be'}): "
                        "refused, and the part removed"
                    )
                out.write(block)
                have += len(block)
                if progress is not None:
                    progress(have, total)
                now = time.monotonic()
                if now - window_start >= timeout:
                    if have - window_have < STALL_BYTES:
                        raise _stalled(weights, have, total, f"{have - window_have:,} bytes in {timeout:g} s")
                    window_start, window_have = now, have
    except TimeoutError as err:  # a read that waited for ``timeout`` seconds
        raise _stalled(weights, have, total, f"nothing for {timeout:g} s") from err
    except (OSError, http.client.HTTPException) as err:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise WeightsError(
                f"the disk holding {weights.cache_dir} is full ({have:,} bytes of {weights.name} kept): "
                "make room and try again; it resumes from there"
            ) from err
        raise WeightsError(
            f"the download of {weights.name} broke off at {have:,} bytes ({err}): try again; it resumes "
            "from there"
        ) from err
    if total is not None and have < total:
        raise WeightsError(
            f"the download of {weights.name} stopped at {have:,} of {total:,} bytes: try again"
        )


def _stalled(weights: WeightsFile, have: int, total: int | None, sent: str) -> WeightsError:
    """The error for a server that stopped sending (the part is kept: the next try resumes)."""
    return WeightsError(
        f"the download of {weights.name} stalled at {have:,}{f' of {total:,}' if total else ''} bytes "
        f"(the server sent {sent}): try again; it resumes from there"
    )


def _finish(weights: WeightsFile) -> Path:
    """Check the part's hash, then rename it into place (a bad part is removed)."""
    if weights.file_hash is not None:
        got = file_digest(weights.part, weights.file_hash)
        if got != weights.file_hash:
            weights.part.unlink(missing_ok=True)
            raise WeightsError(
                f"{weights.name} does not match its checksum (got {got[:12]}…, expected "
                f"{weights.file_hash[:12]}…): the file was removed; download it again"
            )
    elif not is_hdf5(weights.part):  # no hash to check: at least not an error page saved as weights
        weights.part.unlink(missing_ok=True)
        raise WeightsError(f"what came back for {weights.name} is not an HDF5 weights file: it was removed")
    os.replace(weights.part, weights.path)
    return weights.path


def install_local(weights: WeightsFile, source: str | os.PathLike[str]) -> Path:
    """Put a local copy of the weights file into Keras' cache after checking its hash.

    Args:
        weights: the file Keras wants.
        source: the file the user has (downloaded elsewhere).

    Returns:
        The file in the cache.

    Raises:
        WeightsError: missing, or not the file Keras wants (hash differs).
    """
    source = Path(source)
    if not source.is_file():
        raise WeightsError(f"{source} is not a file")
    if weights.file_hash is not None and file_digest(source, weights.file_hash) != weights.file_hash:
        raise WeightsError(f"{source} is not {weights.name}: its checksum differs from the one Keras ships")
    if not weights.checks_out(source):
        raise WeightsError(f"{source} is not {weights.name}: it is not an HDF5 weights file")
    with atomic.replacing(weights.path) as tmp:
        shutil.copyfile(source, tmp)
    return weights.path


def ensure_imagenet_weights(backbone: str, weights: str, image_size: int | None) -> None:
    """Before a run claims its folder: a Keras Applications backbone with ImageNet weights has its
    file in Keras' cache, downloaded now when missing, so a machine without network fails here
    (with what to do) instead of leaving a failed run behind. A named KerasHub preset has its weights
    fetched into KerasHub's cache the same way. Any other backbone: nothing to do.

    Args:
        backbone: the run's backbone (name or path).
        weights: the run's weights setting.
        image_size: the run's input size (some files depend on it).

    Raises:
        BackboneError: the file is not cached and cannot be downloaded (the offline message).
    """
    from tlstudio.core.backbone.registry import offline_message, resolve_backbone

    spec = resolve_backbone(backbone)
    if spec.downloads_preset and weights == "imagenet":
        from tlstudio.core.backbone.kerashub_fetch import fetch_preset_weights

        fetch_preset_weights(spec.source)
        return
    if not spec.downloads_weights_file or weights != "imagenet":
        return
    wanted = imagenet_weights_file(spec.name, image_size)
    if wanted.is_cached():
        return
    try:
        download(wanted)
    except WeightsError as err:  # its own advice names no model: the offline message says it all
        raise BackboneError(offline_message(spec.name, WeightsError(str(err).split(". Offline")[0]))) from err
