"""MirroredStrategy on CPU over two logical devices, in a fresh process: logical devices must
be configured before TensorFlow initialises, which the test process has long done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tlstudio.core.settings import Augmentation, TrainSettings

pytestmark = pytest.mark.slow

MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training import TrainingSession
    settings = TrainSettings.from_dict(json.loads(sys.argv[1]))
    session = TrainingSession(settings, sys.argv[2], sys.argv[3])
    result = session.run()
    print(json.dumps({"status": result.status, "error": result.error, "metrics": result.metrics,
                      "replicas": session.strategy.num_replicas_in_sync if session.strategy else 1}))
    """
)


def settings_for(backbone, **changes) -> TrainSettings:
    return TrainSettings(
        backbone=str(backbone),
        epochs=15,
        fine_tune_epochs=1,
        early_stopping_patience=5,
        batch_size=8,
        learning_rate=1e-2,
        augmentation=Augmentation(flip=False, rotation=0.0),
        **changes,
    )


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
