"""The devices TensorFlow sees, the one a run uses, its precision, and the distribution strategy.

Memory growth is turned on for every GPU before TensorFlow touches them, so a run takes the memory
it needs rather than the whole GPU (a second run or another program can share it).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import asdict, dataclass

import tensorflow as tf

from tlstudio.core.training import distribution, gpu_monitor
from tlstudio.core.training.failures import TrainingError

TENSOR_CORES = (7, 0)  # compute capability from which float16 matrix units (tensor cores) exist


@dataclass(frozen=True)
class Gpu:
    """One GPU as TensorFlow numbers it."""

    index: int
    name: str
    compute_capability: tuple[int, int] | None
    memory_mb: int | None  # total memory, where NVML (nvidia-ml-py) can tell

    def describe(self) -> str:
        """``GPU 0: NVIDIA H100 (79 GiB, compute 9.0)``."""
        facts = []
        if self.memory_mb:
            facts.append(f"{self.memory_mb / 1024:.0f} GiB")
        if self.compute_capability:
            facts.append("compute {}.{}".format(*self.compute_capability))
        return f"GPU {self.index}: {self.name}" + (f" ({', '.join(facts)})" if facts else "")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (`tlstudio devices --json`)."""
        return asdict(self)


def list_gpus() -> list[Gpu]:
    """The GPUs TensorFlow sees, with name, compute capability and (NVML) memory.

    Returns:
        One ``Gpu`` per physical GPU, numbered as ``--device gpu:N`` takes them; empty on a CPU.
    """
    memory = gpu_monitor.total_memory_mb()
    found = []
    for index, device in enumerate(tf.config.list_physical_devices("GPU")):
        try:
            details = tf.config.experimental.get_device_details(device)
        except (RuntimeError, ValueError):
            details = {}
        capability = details.get("compute_capability")
        found.append(
            Gpu(
                index,
                str(details.get("device_name", f"GPU {index}")),
                tuple(capability) if capability else None,
                memory.get(index),
            )
        )
    return found


def tensorflow_version() -> str:
    """The TensorFlow this process runs."""
    return tf.__version__


def enable_memory_growth() -> str | None:
    """Memory growth on for every GPU (call before the first GPU op).

    Returns:
        None when set (or there is no GPU); else why not (TensorFlow already initialised the GPUs).
    """
    for device in tf.config.list_physical_devices("GPU"):
        try:
            if not tf.config.experimental.get_memory_growth(device):
                tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError as err:  # "Physical devices cannot be modified after being initialized"
            return f"memory growth could not be set: {err}"
    return None


def gpu_index(device: str) -> int | None:
    """N of ``gpu:N``; None for ``auto`` and ``cpu``."""
    return int(device.split(":")[1]) if device.startswith("gpu:") else None


def describe_device(device: str = "auto", gpus: list[Gpu] | None = None) -> str:
    """The device a run on ``device`` uses, in words."""
    gpus = list_gpus() if gpus is None else gpus
    if device == "cpu" or not gpus:
        return "CPU"
    index = gpu_index(device) or 0
    chosen = next((g for g in gpus if g.index == index), gpus[0])
    more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 and device == "auto" else ""
    return chosen.describe() + more


def check_device(device: str, strategy: str, gpus: list[Gpu]) -> None:
    """Refuse a device this machine does not have, or one GPU together with every GPU.

    Raises:
        TrainingError: naming the GPUs there are.
    """
    index = gpu_index(device)
    if index is None:
        return
    if index >= len(gpus):
        there = "; ".join(g.describe() for g in gpus) or "none"
        raise TrainingError(
            f"there is no GPU {index} here (TensorFlow sees: {there}); see `tlstudio devices`"
        )
    if strategy == "mirrored":
        raise TrainingError(f"--device {device} picks one GPU and --strategy mirrored every GPU: choose one")


def placement(device: str):
    """The context a run on ``device`` runs in (``auto``: TensorFlow's own placement)."""
    if device == "cpu":
        return tf.device("/CPU:0")
    if gpu_index(device) is not None:
        return tf.device(f"/GPU:{gpu_index(device)}")
    return contextlib.nullcontext()


def use_mixed_precision(setting: str, device: str, strategy: str, gpus: list[Gpu]) -> tuple[bool, str]:
    """Whether a run computes in float16 (weights and the output layer stay float32), and why.

    Args:
        setting: ``on``, ``off`` or ``auto`` (on where every GPU used has tensor cores).
        device: the run's device (``auto``, ``cpu``, ``gpu:N``).
        strategy: ``mirrored`` uses every GPU.
        gpus: what ``list_gpus`` found.

    Returns:
        (on?, why, in a few words).
    """
    if setting == "on":
        return True, "your choice" + ("; slow on a CPU" if device == "cpu" or not gpus else "")
    if setting == "off":
        return False, "your choice"
    if device == "cpu" or not gpus:
        return False, "auto: a CPU gains nothing from float16"
    if strategy == "mirrored" or device == "auto":
        used = gpus if strategy == "mirrored" else gpus[:1]
    else:
        used = [g for g in gpus if g.index == gpu_index(device)]
    lacking = [g for g in used if not g.compute_capability or g.compute_capability < TENSOR_CORES]
    if lacking:
        return False, f"auto: GPU {lacking[0].index} has no tensor cores"
    return True, "auto: tensor cores"


def precision_words(mixed: bool, why: str) -> str:
    """``mixed float16 (auto: tensor cores)`` or ``float32 (…)``: shown beside the device."""
    return f"{'mixed float16' if mixed else 'float32'} ({why})"


def make_strategy(name: str, stop: threading.Event | None = None):
    """None for one device, MirroredStrategy over the local GPUs (else the logical CPUs), or
    MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG`` (see ``multi_worker``)."""
    if name == "default":
        return None
    if name == "multiworker":
        return distribution.make_multi_worker_strategy(stop)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise TrainingError(f"unknown strategy {name}")
