"""Read a PyTorch state dict saved in the legacy (non-zip) format as NumPy arrays, without PyTorch
and without running any code the file names.

A ``.pth`` file is a pickle, and a pickle may call any function it names. This reader allows only
what a state dict needs — an ``OrderedDict``, the tensor-rebuild functions and the storage types —
and refuses every other name with ``UnsafePickle`` before anything is called. The legacy layout is:
magic number, protocol version, system info, the state dict (tensors refer to storages by key), the
list of storage keys, then each storage's element count (8 bytes, little-endian) and raw bytes.

Example:
    >>> weights = read_state_dict("efficientnet-lite0.pth")  # doctest: +SKIP
    >>> weights["_conv_stem.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from dataclasses import dataclass

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
STORAGE_TYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickle(ValueError):
    """The file is not a plain legacy state dict (it names other code, or its layout is wrong)."""


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: type
    size: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, size, stride, *_rest) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_tensor(storage, offset, size, stride) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}


class _Reader(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_TYPES:
            return name  # a storage type: only its name is used (persistent_load)
        raise UnsafePickle(f"the file names {module}.{name}, which a state dict never needs: refused")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafePickle(f"unexpected persistent id {pid!r}")
        kind, key, size = pid[1], str(pid[2]), int(pid[4])
        if kind not in STORAGE_TYPES:
            raise UnsafePickle(f"unknown storage type {kind!r}")
        return _Storage(key, STORAGE_TYPES[kind], size)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The tensors of a legacy PyTorch state dict, by name, as NumPy arrays (copies).

    Args:
        path: a ``.pth`` file written by ``torch.save`` with ``_use_new_zipfile_serialization=False``.

    Returns:
        Name → array, in the file's order.

    Raises:
        UnsafePickle: the file names any code but a state dict's, or is not in the legacy layout.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"PK":
        raise UnsafePickle(f"{path} is a zip-format PyTorch file; this reader takes the legacy format only")
    stream = io.BytesIO(data)
    try:
        if _Reader(stream).load() != MAGIC:
            raise UnsafePickle(f"{path} is not a legacy PyTorch file (wrong magic number)")
        if _Reader(stream).load() != PROTOCOL:
            raise UnsafePickle(f"{path}: unknown PyTorch protocol")
        info = _Reader(stream).load()
        if not isinstance(info, dict) or not info.get("little_endian", False):
            raise UnsafePickle(f"{path}: only little-endian files are read")
        state = _Reader(stream).load()
        keys = _Reader(stream).load()
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError) as err:
        raise UnsafePickle(f"{path} is not a readable state dict: {err}") from err
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise UnsafePickle(f"{path} does not hold a state dict")
    refs = {name: ref for name, ref in state.items() if isinstance(ref, _TensorRef)}
    dtypes = {ref.storage.key: ref.storage.dtype for ref in refs.values()}
    storages: dict[str, np.ndarray] = {}
    for key in map(str, keys):
        count = int.from_bytes(stream.read(8), "little")
        dtype = np.dtype(dtypes.get(key, np.uint8))
        raw = stream.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise UnsafePickle(f"{path} is truncated (storage {key})")
        storages[key] = np.frombuffer(raw, dtype)
    out: dict[str, np.ndarray] = {}
    for name, ref in refs.items():
        flat = storages.get(ref.storage.key)
        if flat is None:
            raise UnsafePickle(f"{path}: tensor {name} refers to a storage the file lacks")
        needed = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True)) + 1
        if ref.shape and (needed > flat.size or ref.offset < 0 or min(ref.stride, default=0) < 0):
            raise UnsafePickle(f"{path}: tensor {name} reaches past its storage")
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset :], shape=ref.shape, strides=tuple(s * item for s in ref.stride)
        )
        out[name] = np.array(view)
    return out
