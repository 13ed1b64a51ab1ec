"""The device a run uses, in words, and the distribution strategy it asked for."""

from __future__ import annotations

import threading

import tensorflow as tf

from tlstudio.core.training import distribution
from tlstudio.core.training.failures import TrainingError


def describe_device() -> str:
    """The device training will use, in words."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    except (RuntimeError, ValueError):
        name = "GPU"
    return f"GPU: {name}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else "")


def make_strategy(name: str, stop_event: threading.Event | None = None):
    """None for one device, MirroredStrategy over the local GPUs (else the logical CPUs), or
    MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG`` (see ``multi_worker``)."""
    if name == "default":
        return None
    if name == "multiworker":
        return distribution.make_multi_worker_strategy(stop_event)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise TrainingError(f"unknown strategy {name}")
