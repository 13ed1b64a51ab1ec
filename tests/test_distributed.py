"""Distribution strategies in fresh processes: MirroredStrategy on two logical CPU devices (they
must be configured before TensorFlow initialises, which the test process has long done), and
MultiWorkerMirroredStrategy with two CPU workers on localhost."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tlstudio.core.data.split import Manifest
from tlstudio.core.project import Project
from tlstudio.core.results.evaluation import load_exported
from tlstudio.core.settings import Augmentation, TrainSettings

pytestmark = pytest.mark.slow

MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.session import TrainingSession
    settings = TrainSettings.from_dict(json.loads(sys.argv[1]))
    session = TrainingSession(settings, sys.argv[2], sys.argv[3])
    result = session.run()
    print(json.dumps({"status": result.status, "error": result.error, "metrics": result.metrics,
                      "replicas": session.strategy.num_replicas_in_sync if session.strategy else 1}))
    """
)


def settings_for(backbone, **changes) -> TrainSettings:
    base = {
        "backbone": str(backbone),
        "epochs": 15,
        "fine_tune_epochs": 1,
        "early_stopping_patience": 5,
        "batch_size": 8,
        "learning_rate": 1e-2,
        "augmentation": Augmentation(flip=False, rotation=0.0),
    }
    return TrainSettings(**(base | changes))


def env() -> dict[str, str]:
    return os.environ | {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_mirrored_strategy_on_two_logical_cpus(colour_data, tiny_backbone_file, tmp_path):
    settings = settings_for(tiny_backbone_file, strategy="mirrored")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            MIRRORED,
            json.dumps(settings.to_dict()),
            str(colour_data),
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env(),
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed", result["error"]
    assert result["replicas"] == 2
    assert result["metrics"]["test_accuracy"] >= 0.8
    assert (tmp_path / "run" / "saved_model" / "saved_model.pb").is_file()


MULTIWORKER = ["--strategy", "multiworker"]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def epoch_lines(output: str) -> list[str]:
    """The printed epoch results without their timing."""
    return [re.sub(r"\s+\S+s$", "", line.strip()) for line in output.splitlines() if "  epoch " in line]


def start_workers(project: Path, logs: Path) -> list[tuple[subprocess.Popen, Path]]:
    """`tlstudio train --project P --strategy multiworker` twice, as worker 0 and 1 of one cluster."""
    workers = [f"localhost:{port}" for port in free_ports(2)]
    started = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        log = logs / f"worker{index}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "tlstudio", "train", "--project", str(project), *MULTIWORKER],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env() | {"TF_CONFIG": json.dumps(config)},
            )
        started.append((process, log))
    return started


def finish(workers, timeout: float = 300) -> list[tuple[int, str]]:
    try:
        return [(process.wait(timeout), log.read_text()) for process, log in workers]
    finally:
        for process, _ in workers:
            process.kill()


def colour_project(path: Path, data: Path, backbone: Path, **changes) -> Project:
    project = Project(path=path, data_dir=str(data), settings=settings_for(backbone, **changes))
    project.save()
    return project


def the_only_run(project: Project) -> tuple[dict, Path]:
    runs = Project.load(project.path).runs
    assert len(runs) == 1  # the chief's run only; the other worker records nothing
    run_dir = Path(runs[0]["run_dir"])
    assert [p.name for p in run_dir.parent.iterdir()] == [run_dir.name]
    return runs[0], run_dir


def test_two_workers_on_localhost_train_one_model_and_the_chief_exports(
    colour_data, tiny_backbone_file, tmp_path
):
    project = colour_project(
        tmp_path / "p.tlstudio.json", colour_data, tiny_backbone_file, epochs=8, early_stopping_patience=8
    )
    (code0, chief), (code1, other) = finish(start_workers(project.path, tmp_path))
    assert code0 == 0, chief[-3000:]
    assert code1 == 0, other[-3000:]
    # One model: the global loss and accuracy (summed over both workers' halves) every epoch, alike.
    assert epoch_lines(chief) and epoch_lines(chief) == epoch_lines(other)
    assert "worker 0 (chief)" in chief and "worker 1 (records nothing)" in other

    run, run_dir = the_only_run(project)
    assert run["status"] == "completed"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["cluster"] == {"task": "worker 0", "workers": 2, "replicas": 2}
    assert record["metrics"]["test_accuracy"] >= 0.8
    exported = load_exported(run_dir / "saved_model")
    assert exported.labels == Manifest.load(run_dir / "manifest.csv").classes


def test_ctrl_c_on_one_worker_stops_all_after_the_same_step(colour_data, tiny_backbone_file, tmp_path):
    project = colour_project(
        tmp_path / "p.tlstudio.json", colour_data, tiny_backbone_file, epochs=200, early_stopping_patience=200
    )
    workers = start_workers(project.path, tmp_path)
    process, log = workers[1]
    deadline = time.monotonic() + 240
    while "epoch 2/" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    (code0, chief), (code1, other) = finish(workers)
    assert (code0, code1) == (130, 130), (chief + other)[-3000:]  # both stopped, neither hung
    assert epoch_lines(chief) == epoch_lines(other)
    assert 2 <= len(epoch_lines(chief)) < 200
    run, run_dir = the_only_run(project)
    assert run["status"] == "stopped"
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()  # the best checkpoint, exported


def test_multiworker_needs_a_usable_tf_config(monkeypatch):
    from tlstudio.core.training.distribution import MultiWorkerError, make_multi_worker_strategy

    for value, expected in [
        ("", "needs TF_CONFIG"),
        ("{not json", "not usable"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "not usable"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "task index 3"),
        (
            '{"cluster": {"evaluator": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}',
            "chief or a worker",
        ),
    ]:
        monkeypatch.setenv("TF_CONFIG", value)
        with pytest.raises(MultiWorkerError, match=expected):
            make_multi_worker_strategy()


def test_workers_meet_before_tensorflow_takes_their_ports():
    from tlstudio.core.training.distribution import wait_for_peers

    cluster = {"worker": [f"localhost:{port}" for port in free_ports(3)]}
    failures = []

    def worker(index):
        try:
            wait_for_peers(cluster, "worker", index, None, timeout_s=30)
        except Exception as err:
            failures.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.3)  # they start at different times
    for thread in threads:
        thread.join(60)
    assert not failures and not any(t.is_alive() for t in threads)
    for address in cluster["worker"]:  # every port is free again for TensorFlow
        socket.create_server(("", int(address.rsplit(":", 1)[1]))).close()


def test_a_worker_alone_gives_up_with_a_message_and_can_be_stopped():
    from tlstudio.core.training.distribution import MultiWorkerError, wait_for_peers

    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    started = time.monotonic()
    with pytest.raises(MultiWorkerError, match=r"did not join within 1 s \(still missing: worker:1 at"):
        wait_for_peers(cluster, "worker", 0, None, timeout_s=1)
    assert time.monotonic() - started < 10
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(MultiWorkerError, match="stopped while waiting"):
        wait_for_peers(cluster, "worker", 0, stop, timeout_s=60)
    taken = socket.create_server(("", int(cluster["worker"][0].rsplit(":", 1)[1])))
    with taken, pytest.raises(MultiWorkerError, match="is not free"):
        wait_for_peers(cluster, "worker", 0, None, timeout_s=1)


def test_a_cluster_that_never_meets_records_nothing(
    colour_data, tiny_backbone_file, tmp_path, monkeypatch, capsys
):
    from tlstudio.cli import main

    project = colour_project(tmp_path / "p.tlstudio.json", colour_data, tiny_backbone_file)
    config = {
        "cluster": {"worker": [f"localhost:{p}" for p in free_ports(2)]},
        "task": {"type": "worker", "index": 1},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    monkeypatch.setenv("TLSTUDIO_CLUSTER_TIMEOUT", "1")
    assert main(["train", "--project", str(project.path), *MULTIWORKER]) == 1
    err = capsys.readouterr().err
    assert "Joining the cluster in TF_CONFIG as worker 1 of 2 machines" in err
    assert "did not join within 1 s" in err
    assert Project.load(project.path).runs == [] and not project.runs_dir.exists()
