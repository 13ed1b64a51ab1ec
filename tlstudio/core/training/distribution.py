"""Training on several machines: ``MultiWorkerMirroredStrategy`` with ``TF_CONFIG``, and a training
loop for it.

Keras 3's ``Model.fit`` does not run under this strategy (keras-team/keras#20585): in Keras 3.15 it
first reduces a distributed input batch eagerly (``ValueError: Attempt to convert a value
(PerReplica…)``), and past that its per-step reduction of the logs takes a mean over axis 0 of
scalars (``Invalid reduction dimension 0``). ``fit_distributed`` is therefore the part of ``fit`` a
TL Studio run uses, written as the custom loop ``tf.distribute`` documents: ``strategy.run`` on
each replica, gradients all-reduced by the optimizer, losses and counts summed over every replica
of every worker, and the same Keras callbacks (checkpoint, early stopping, progress) driven through
``keras.callbacks.CallbackList``.

Every worker must take the same decisions (stop early, stop when asked), or one would wait for
the others forever: the validation loss is the global one, identical on every worker, and a stop
asked on any worker is summed into each step's result, so all of them stop after the same step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

TF_CONFIG_HELP = (
    'set TF_CONFIG on every machine, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}} (index 1 on the second machine)'
)


DEFAULT_JOIN_TIMEOUT_S = 600
GREETING = "tlstudio-cluster/1"


class MultiWorkerError(Exception):
    """A cluster that cannot train together, with what to fix."""


@dataclass(frozen=True)
class ClusterConfig:
    """This machine's place in the cluster, from ``TF_CONFIG``."""

    cluster: dict[str, list[str]]
    task_type: str
    index: int

    @property
    def members(self) -> dict[str, str]:
        return members_of(self.cluster)


def members_of(cluster: dict[str, list[str]]) -> dict[str, str]:
    """{"chief:0" / "worker:N": address} for the machines that train."""
    return {
        f"{job}:{i}": address for job in ("chief", "worker") for i, address in enumerate(cluster.get(job, []))
    }


def read_tf_config() -> ClusterConfig:
    """``TF_CONFIG``, checked, with errors that say how to write it."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise MultiWorkerError(f"--strategy multiworker needs TF_CONFIG: {TF_CONFIG_HELP}")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], int(task["index"])
        members = cluster[task_type]
    except (ValueError, KeyError, TypeError) as err:
        raise MultiWorkerError(f"TF_CONFIG is not usable ({err!r}): {TF_CONFIG_HELP}") from None
    if task_type not in ("chief", "worker"):
        raise MultiWorkerError(f"TF_CONFIG task type '{task_type}': this machine must be a chief or a worker")
    if not 0 <= index < len(members):
        raise MultiWorkerError(
            f"TF_CONFIG task index {index}, but the cluster has {len(members)} {task_type}(s)"
        )
    return ClusterConfig(cluster, task_type, index)


def join_timeout_s() -> float:
    return float(os.environ.get("TLSTUDIO_CLUSTER_TIMEOUT", DEFAULT_JOIN_TIMEOUT_S))


def make_multi_worker_strategy(
    stop: threading.Event | None = None, timeout_s: float | None = None
) -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy for the cluster that ``TF_CONFIG`` describes (checked first, with clear errors).

    First waits until every worker has started (``wait_for_peers``): up to ``timeout_s``
    (``TLSTUDIO_CLUSTER_TIMEOUT``, default 600 s), or until ``stop`` is set."""
    config = read_tf_config()
    timeout_s = join_timeout_s() if timeout_s is None else timeout_s
    wait_for_peers(config.cluster, config.task_type, config.index, stop, timeout_s)
    return tf.distribute.MultiWorkerMirroredStrategy()


def wait_for_peers(
    cluster: dict[str, list[str]],
    task_type: str,
    index: int,
    stop: threading.Event | None,
    timeout_s: float,
) -> None:
    """Meet every other chief/worker of ``cluster`` over plain TCP on the cluster's own ports,
    before TensorFlow takes them.

    TensorFlow's own wait for the cluster happens inside C++ holding the GIL, and it handles
    SIGTERM itself (its preemption notifier): a worker whose peers never come could be ended by
    neither Ctrl-C, a timeout nor ``kill``. Here each machine answers on its port and calls every
    other one until it has reached all of them and all of them have reached it; only then does
    TensorFlow start, and its own wait is short. Raises ``MultiWorkerError`` after ``timeout_s`` or
    when ``stop`` is set."""
    me = f"{task_type}:{index}"
    members = members_of(cluster)
    peers = {name: address for name, address in members.items() if name != me}
    port = int(members[me].rsplit(":", 1)[1])
    try:
        server = socket.create_server(("", port))
    except OSError as err:
        raise MultiWorkerError(
            f"port {port} of this machine (TF_CONFIG {members[me]}) is not free: {err}"
        ) from None
    heard: set[str] = set()
    done = threading.Event()

    def answer() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    hello = conn.recv(128).decode(errors="replace").split()
                    if len(hello) == 2 and hello[0] == GREETING:
                        conn.sendall(f"{GREETING} {me}\n".encode())
                        heard.add(hello[1])
                        conn.recv(1)  # the caller closes first, so this port has no TIME_WAIT for TF
                except OSError:
                    pass

    listener = threading.Thread(target=answer, name="tlstudio-cluster-rendezvous", daemon=True)
    listener.start()
    reached: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while not (reached >= peers.keys() and heard >= peers.keys()):
            for name, address in peers.items():
                if name not in reached and _greets(address, me, name):
                    reached.add(name)
            if stop is not None and stop.is_set():
                raise MultiWorkerError("stopped while waiting for the other workers to join")
            if time.monotonic() > deadline:
                missing = sorted(n for n in peers if n not in reached or n not in heard)
                raise MultiWorkerError(
                    f"the other workers did not join within {timeout_s:.0f} s (still missing: "
                    f"{', '.join(f'{n} at {peers[n]}' for n in missing)}): start the same command with "
                    "its own TF_CONFIG on every machine of the cluster, and check that those addresses "
                    "and ports are reachable from here"
                )
            time.sleep(0.2)
    finally:
        done.set()
        listener.join()
        server.close()


def _greets(address: str, me: str, expected: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as conn:
            conn.settimeout(5)
            conn.sendall(f"{GREETING} {me}\n".encode())
            return conn.recv(128).decode(errors="replace").split() == [GREETING, expected]
    except OSError:
        return False


def joining_message(config: ClusterConfig) -> str:
    """What a worker says while it waits for the rest of its cluster."""
    return (
        f"Joining the cluster in TF_CONFIG as {config.task_type} {config.index} of "
        f"{len(config.members)} machines: waiting until every worker has started (up to "
        f"{join_timeout_s():.0f} s; Ctrl-C gives up)…"
    )


def is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """The worker that records the run and exports: task "chief", else worker 0."""
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def task_name(strategy) -> str:
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type} {resolver.task_id}"


def describe_cluster(strategy) -> dict[str, object]:
    """This worker's task, how many machines train together, and the replicas over all of them."""
    machines = len(members_of(strategy.cluster_resolver.cluster_spec().as_dict()))
    return {"task": task_name(strategy), "workers": machines, "replicas": strategy.num_replicas_in_sync}


def check_same_data(strategy, fingerprint: str) -> None:
    """Raise on every worker (not only on the odd one out) unless all hold the same split."""
    value = tf.constant([int(hashlib.sha256(fingerprint.encode()).hexdigest()[:15], 16)], tf.int64)

    @tf.function
    def gather():
        return strategy.gather(strategy.run(lambda: tf.identity(value)), axis=0)

    values = set(np.asarray(gather()).tolist())
    if len(values) > 1:
        raise MultiWorkerError(
            "the workers do not have the same data split (manifest fingerprints differ): give every "
            "worker the same data folder and the same manifest (--manifest, or the project's)"
        )


def barrier(strategy) -> None:
    """Wait until every worker gets here (the chief after its export: the others must not leave
    the cluster while it still works)."""

    @tf.function
    def together():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

    together()


def distribute(
    strategy,
    entries: Sequence,
    global_batch: int,
    build: Callable[[Sequence, int], tf.data.Dataset],
):
    """A distributed dataset: each worker reads only its share of the files (every n-th entry), in
    per-replica batches. ``build(entries, batch_size)`` makes one worker's pipeline."""
    per_replica = max(1, math.ceil(global_batch / strategy.num_replicas_in_sync))

    def dataset_for(context: tf.distribute.InputContext) -> tf.data.Dataset:
        share = list(entries)[context.input_pipeline_id :: context.num_input_pipelines]
        ds = build(share, per_replica)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options)

    return strategy.distribute_datasets_from_function(dataset_for)


def fit_distributed(
    model: keras.Model,
    strategy,
    train,
    val,
    *,
    epochs: int,
    initial_epoch: int,
    callbacks: list[keras.callbacks.Callback],
    class_weight: dict[int, float] | None,
    stop: threading.Event,
    agreed_stop: threading.Event,
) -> None:
    """Train ``model`` (compiled under ``strategy``) like ``fit`` with sparse categorical cross-entropy
    and accuracy. ``train``/``val`` come from ``distribute``. ``stop`` is this worker's request
    to stop; ``agreed_stop`` is set on every worker once any of them asked, after the same step (the
    callbacks should check that one)."""
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_weights)
    weights = None
    if class_weight:
        weights = tf.constant([class_weight[i] for i in range(len(class_weight))], tf.float32)
    train_step = _train_step(model, strategy, weights)
    val_step = _val_step(model, strategy)
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        totals = np.zeros(3)
        for step, batch in enumerate(train):
            stats = train_step(batch, tf.constant(float(stop.is_set())))
            loss_sum, correct, count, stops = np.asarray(stats, dtype=np.float64)
            totals += (loss_sum, correct, count)
            if stops > 0:
                agreed_stop.set()
            callback_list.on_train_batch_end(step, _logs(loss_sum, correct, count))
        logs = _logs(*totals)
        if val is not None:
            val_totals = np.zeros(3)
            for batch in val:
                val_totals += np.asarray(val_step(batch), dtype=np.float64)
            logs |= {f"val_{k}": v for k, v in _logs(*val_totals).items()}
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()


def _logs(loss_sum: float, correct: float, count: float) -> dict[str, float]:
    if count == 0:
        return {"loss": math.nan, "accuracy": math.nan}
    return {"loss": loss_sum / count, "accuracy": correct / count}


def _train_step(model: keras.Model, strategy, class_weights: tf.Tensor | None):
    """One step on every replica; returns the global [loss sum, correct, images, stop requests]."""

    def replica_step(x, y, stop):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_image = keras.losses.sparse_categorical_crossentropy(y, probs)
            if class_weights is not None:
                per_image = per_image * tf.gather(class_weights, y)
            loss = tf.nn.compute_average_loss(per_image)  # ÷ global batch: the all-reduced sum is a mean
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = model.optimizer.scale_loss(loss)
        model.apply_gradient_groups(tape.gradient(scaled, model.trainable_weights))
        return _sums(per_image, probs, y, stop)

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def step(batch, stop):
        x, y = batch
        per_replica = strategy.run(replica_step, args=(x, y, stop))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def _val_step(model: keras.Model, strategy):
    def replica_step(x, y):
        probs = model(x, training=False)
        per_image = keras.losses.sparse_categorical_crossentropy(y, probs)
        return _sums(per_image, probs, y, tf.constant(0.0))[:3]

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def step(batch):
        x, y = batch
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(x, y)), axis=None)

    return step


def _sums(per_image, probs, y, stop):
    predicted = tf.cast(tf.argmax(probs, axis=-1), y.dtype)
    correct = tf.reduce_sum(tf.cast(predicted == y, tf.float32))
    count = tf.cast(tf.shape(y)[0], tf.float32)
    return tf.stack([tf.reduce_sum(tf.cast(per_image, tf.float32)), correct, count, stop])


def cluster_words(strategy, here: str, primary: bool) -> str:
    """A run's device in words (``here``), with its place in the cluster when it is one of several workers.

    Args:
        strategy: the run's ``tf.distribute`` strategy, or None.
        here: this machine's device and precision in words.
        primary: whether this worker records the run (the chief).
    """
    if not is_multi_worker(strategy):
        return here
    role = "chief" if primary else "records nothing"
    return f"{here} · {task_name(strategy)} ({role}), {strategy.num_replicas_in_sync} replicas in the cluster"
