"""Where a backbone comes from, decided without importing Keras: the hub-handle check and the
error every backbone builder raises (shared by the registry and the SavedModel loader)."""

from __future__ import annotations

import contextlib
import json
import zipfile
from pathlib import Path

HUB_PREFIXES = ("https://tfhub.dev/", "https://www.kaggle.com/models/", "https://kaggle.com/models/")


class BackboneError(Exception):
    """A backbone that cannot be built, with a message that says what to do."""


def is_hub_handle(text: str) -> bool:
    """Whether ``text`` looks like a TF Hub / Kaggle Models handle.

    Args:
        text: what the user typed as the backbone.

    Returns:
        True for an https handle of TF Hub or Kaggle Models.
    """
    return text.startswith(HUB_PREFIXES)


SAMPLE_MODEL_NAME = "demo_cnn"  # the sample project's bundled backbone (core/data/sample.py builds it)


def model_file_facts(path: Path) -> tuple[str | None, int | None]:
    """A model file's name and square input size, read from its saved config without Keras.

    Args:
        path: a ``.keras`` file (a zip with ``config.json``) or a Keras ``.h5`` file.

    Returns:
        (the model's name, its input height when height and width are equal); None for what the
        file does not say (an input of any size, a subclassed model, an unreadable file).
    """
    config = None
    with contextlib.suppress(Exception):  # whatever is wrong with the file, building it says so later
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                if archive.getinfo("config.json").file_size <= MAX_CONFIG:  # (a bomb is not inflated)
                    config = json.loads(archive.read("config.json"))
        else:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                config = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw else None
    if not isinstance(config, dict):
        return None, None
    inner = config.get("config") or {}
    shapes = [
        layer.get("config", {}).get("batch_shape") or layer.get("config", {}).get("batch_input_shape")
        for layer in inner.get("layers") or []
        if isinstance(layer, dict) and layer.get("class_name") == "InputLayer"
    ] + [inner.get("build_input_shape")]
    for shape in shapes:
        if isinstance(shape, list) and len(shape) == 4 and shape[1] and shape[1] == shape[2]:
            return inner.get("name"), int(shape[1])
    return inner.get("name"), None


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(file: Path) -> bool:
    """Whether ``file`` carries HDF5's signature (at 0, or after a user block of 512·2ⁿ bytes).

    Args:
        file: any file.

    Returns:
        True for an HDF5 file (Keras ``.h5`` models and weights).
    """
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                f.seek(offset)
                if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def model_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a Keras model file, read without Keras (None: it looks like one).

    Args:
        path: a ``.keras`` (a zip holding ``config.json``) or ``.h5`` file.

    Returns:
        A one-line reason, or None.
    """
    if not path.exists():
        return f"{path}: file not found"
    if not path.is_file():
        return f"{path}: not a regular file"
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                archive.getinfo("config.json")
                members = archive.infolist()
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return f"{path} is not a readable .keras file (a zip with config.json): truncated, or not one"
        return zip_bomb_problem(path, members)
    return None if is_hdf5(path) else f"{path} is not an HDF5 Keras model file: truncated, or not one"


# What a .keras zip may declare before anything in it is inflated: Keras itself stores its members
# uncompressed (1:1), and float weights deflate by a few percent at most, so a member that inflates
# past MAX_RATIO:1 and past RATIO_FLOOR bytes holds no weights; the totals bound the rest.
MAX_MEMBERS = 10_000
MAX_INFLATED = 16 * 1024**3  # every member together: well above the largest Keras Applications model
MAX_CONFIG = 64 * 1024**2  # config.json and metadata.json, read whole
# a .keras zip's own description members (Keras' names, not a run folder's: declared once here)
KERAS_METADATA = "metadata.json"
KERAS_DESCRIPTIONS = ("config.json", KERAS_METADATA)
MAX_RATIO = 50
RATIO_FLOOR = 32 * 1024**2


def zip_bomb_problem(path: Path, members: list[zipfile.ZipInfo]) -> str | None:
    """Why a ``.keras`` zip would inflate to more than a model, from the sizes its members declare
    (nothing is decompressed; Python's zip reader never inflates a member past its declared size).

    Args:
        path: the file, for the message.
        members: its ``infolist()``.

    Returns:
        A one-line reason, or None.
    """
    if len(members) > MAX_MEMBERS:
        return f"{path} holds {len(members):,} files: not a Keras model (a zip bomb?), refused unread"
    total = sum(m.file_size for m in members)
    for m in members:
        name = m.filename if m.filename.isprintable() and len(m.filename) <= 80 else repr(m.filename)[:80]
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            return (
                f"{path}: {name} would inflate from {m.compress_size / 1e6:.1f} MB to "
                f"{m.file_size / 1e6:,.0f} MB ({ratio:,.0f}:1; model weights compress at most a little): "
                "a zip bomb, refused unread"
            )
        if m.filename in KERAS_DESCRIPTIONS and m.file_size > MAX_CONFIG:
            return f"{path}: its {name} declares {m.file_size / 1e6:,.0f} MB (a zip bomb?), refused unread"
    if total > MAX_INFLATED:
        return (
            f"{path} declares {total / 1e9:,.1f} GB uncompressed, more than any Keras model "
            f"({MAX_INFLATED / 1e9:.0f} GB at most): a zip bomb, refused unread"
        )
    return None
