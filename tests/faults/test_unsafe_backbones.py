"""A SavedModel backbone whose function writes or reads files or runs Python is refused before it is
used: nothing of it runs, no run folder is made, and an export of such a model would be refused too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from factory import make_colour_dataset

from tlstudio.core.backbone.graph_ops import savedmodel_problem, unsafe_ops
from tlstudio.core.backbone.registry import BackboneError
from tlstudio.core.backbone.savedmodel import SavedModelLayer

pytestmark = pytest.mark.slow
ENV = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


class Features(tf.Module):
    """A hub-style feature extractor; ``effect`` adds an operation that reaches outside the model."""

    def __init__(self, effect: str, marker: str):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal((3, 6), seed=(1, 2)))
        self.effect, self.marker = effect, marker

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        if self.effect == "write":
            tf.io.write_file(self.marker, tf.strings.as_string(tf.reduce_sum(images)))
        elif self.effect == "read":
            images = images + 0.0 * tf.cast(tf.strings.length(tf.io.read_file(self.marker)), tf.float32)
        elif self.effect == "python":
            images = tf.py_function(lambda x: x, [images], tf.float32)
            images.set_shape([None, None, None, 3])
        elif self.effect == "print":
            tf.print("seen", output_stream="file://" + self.marker)
        elif self.effect == "nested":  # the write inside a function the served one calls
            images = _writes(images, self.marker)
        return tf.reduce_mean(tf.nn.relu(tf.tensordot(images, self.kernel, 1)), axis=[1, 2])


@tf.function
def _writes(images, marker):
    tf.io.write_file(marker, "x")
    return images


def saved(tmp_path, effect: str) -> tuple:
    marker = tmp_path / f"{effect}-marker.txt"
    marker.write_text("")  # (read needs a file at trace time; write must not leave one)
    folder = tmp_path / f"sm-{effect}"
    tf.saved_model.save(Features(effect, str(marker)), str(folder))
    marker.unlink()
    return folder, marker


@pytest.mark.parametrize(
    ("effect", "words"),
    [
        ("write", "WriteFile (writes files)"),
        ("read", "ReadFile (reads files)"),
        ("python", "runs Python code"),
        ("print", "PrintV2 to file://"),
        ("nested", "WriteFile (writes files)"),
    ],
)
def test_an_unsafe_savedmodel_backbone_is_refused_before_it_runs(tmp_path, effect, words):
    folder, marker = saved(tmp_path, effect)
    with pytest.raises(BackboneError, match="reach outside the model") as refused:
        SavedModelLayer(str(folder))
    assert words in str(refused.value) and "\n" not in str(refused.value)
    assert not marker.exists()  # nothing of it ran
    assert savedmodel_problem(str(folder)) is not None  # and the export check sees it too


def test_a_self_contained_savedmodel_is_taken(tmp_path):
    folder, _ = saved(tmp_path, "none")
    layer = SavedModelLayer(str(folder))
    assert layer(tf.zeros((1, 8, 8, 3))).shape == (1, 6)
    assert savedmodel_problem(str(folder)) is None
    assert unsafe_ops([]) == []


def test_train_refuses_an_unsafe_backbone_before_any_run_folder_and_writes_nothing(tmp_path):
    folder, marker = saved(tmp_path, "write")
    data = make_colour_dataset(tmp_path / "data", per_class=4)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "tlstudio", "train", str(data), "--backbone", str(folder), "--out", str(out)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert done.returncode != 0
    assert "WriteFile (writes files)" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not out.exists() and not marker.exists()


def test_an_export_that_would_run_an_unsafe_op_is_refused_and_nothing_is_put_in_place(tmp_path):
    """Defence in depth: even a model that got past the backbone check (a layer of someone's own)
    never ships a file-writing op in its SavedModel."""
    import keras

    from tlstudio.core.deploy.export import ExportError, export_model

    marker = tmp_path / "written-by-the-model.txt"

    class Writes(keras.layers.Layer):
        def call(self, x):
            tf.io.write_file(str(marker), "served")
            return x

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(Writes()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    out = tmp_path / "run"
    with pytest.raises(ExportError, match=r"WriteFile \(writes files\)"):
        export_model(model, out, labels=["a", "b"], image_size=8)
    assert not (out / "saved_model").exists() and not (out / "model.keras").exists()
