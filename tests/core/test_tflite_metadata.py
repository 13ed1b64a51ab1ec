"""Labels inside a .tflite: written as TFLite metadata (the schema MediaPipe and Android read), read back
by the check in a fresh process, a mismatch failing the export; the model itself runs unchanged."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlstudio.core.deploy import runtime_check, tflite_metadata
from tlstudio.core.deploy.formats import DeployError, export_format
from tlstudio.core.deploy.runtime_check import tflite_labels, tflite_runner
from tlstudio.core.deploy.tflite_metadata import compare_labels, embed_labels

MEDIAPIPE_WRITTEN = Path(__file__).parent / "data" / "mediapipe_image_classifier.tflite"


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    """A small converted classifier with no metadata."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("tflite") / "plain.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_labels_go_inside_and_the_model_runs_unchanged(plain_model, tmp_path):
    labels = ["cat", "dog house", "çà"]
    labelled = tmp_path / "model.tflite"
    labelled.write_bytes(embed_labels(plain_model.read_bytes(), labels, image_size=8))
    assert tflite_labels(str(labelled)) == labels
    with zipfile.ZipFile(labelled) as packed:  # what the sample client and any zip reader see
        assert packed.read("labels.txt").decode().splitlines() == labels
    x = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 3)).astype(np.float32)
    assert np.array_equal(tflite_runner(str(labelled))(x), tflite_runner(str(plain_model))(x))

    from ai_edge_litert import schema_py_generated as schema

    data = labelled.read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    assert names.count(b"TFLITE_METADATA") == 1 and b"min_runtime_version" in names  # the converter's kept
    view = np.frombuffer(data, np.uint8)
    for i in range(model.BuffersLength()):  # weights stay on the schema's 16-byte boundaries
        if model.Buffers(i).DataLength():
            start = model.Buffers(i).DataAsNumpy().__array_interface__["data"][0]
            assert (start - view.__array_interface__["data"][0]) % 16 == 0

    again = tmp_path / "again.tflite"  # labelled twice: one entry, the new labels, no second zip
    again.write_bytes(embed_labels(data, ["x", "y", "z"], image_size=8))
    model = schema.Model.GetRootAs(again.read_bytes(), 0)
    assert [model.Metadata(i).Name() for i in range(model.MetadataLength())].count(b"TFLITE_METADATA") == 1
    assert tflite_labels(str(again)) == ["x", "y", "z"]
    assert zipfile.ZipFile(again).namelist() == ["labels.txt"]

    with pytest.raises(ValueError, match="no TFLITE_METADATA"):
        tflite_labels(str(plain_model))
    with pytest.raises(ValueError, match="line break"):
        embed_labels(data, ["a\nb"], image_size=8)


def test_the_reader_reads_what_mediapipes_metadata_writer_wrote():
    # written by MediaPipe 0.10.21's image_classifier.MetadataWriter (labels a, "b b", ç): the reader
    # follows the schema, not only this module's own writer
    assert tflite_labels(str(MEDIAPIPE_WRITTEN)) == ["a", "b b", "ç"]


def test_the_metadata_says_what_a_metadata_reader_needs(plain_model):
    """The ModelMetadata as MediaPipe's MetadataDisplayer showed it for this writer's output: an RGB image
    input (mean 0, std 1: pixels 0-255 in) and the labels as the output's TENSOR_AXIS_LABELS."""
    from flatbuffers import number_types
    from flatbuffers.table import Table

    meta = tflite_metadata._model_metadata(["a", "b"], 8, "n", "")
    assert meta[4:8] == b"M001"
    root = Table(meta, int.from_bytes(meta[:4], "little"))

    def items(table, slot):
        o = table.Offset(4 + 2 * slot)
        start = table.Vector(o)
        return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(o))]

    def text(table, slot):
        return table.String(table.Offset(4 + 2 * slot) + table.Pos).decode()

    assert text(root, 7) == "1.0.0"  # min_parser_version
    (subgraph,) = items(root, 3)
    (image,) = items(subgraph, 2)
    (output,) = items(subgraph, 3)
    assert text(image, 0) == "image" and text(output, 0) == "probability"
    (unit,) = items(image, 4)
    options = Table(unit.Bytes, unit.Indirect(unit.Offset(6) + unit.Pos))
    mean = options.GetVectorAsNumpy(number_types.Float32Flags, options.Offset(4))
    std = options.GetVectorAsNumpy(number_types.Float32Flags, options.Offset(6))
    assert mean.tolist() == [0.0] and std.tolist() == [1.0]
    (labels_file,) = items(output, 6)
    assert text(labels_file, 0) == "labels.txt"


def test_compare_labels_says_what_differs():
    assert compare_labels({"labels": ["a", "b"]}, ["a", "b"])[0]
    passed, rule = compare_labels({"labels": ["b", "a"]}, ["a", "b"])
    assert not passed and "0: 'b' ≠ 'a'" in rule
    passed, rule = compare_labels({"labels_error": "the model holds no TFLITE_METADATA"}, ["a"])
    assert not passed and "no TFLITE_METADATA" in rule


@pytest.mark.slow
def test_a_tflite_whose_labels_are_not_the_runs_classes_is_not_exported(probe_run, tmp_path, monkeypatch):
    out = tmp_path / "tflite"
    result = export_format(probe_run, "tflite", out=out)
    classes = (probe_run / "labels.txt").read_text().splitlines()
    assert tflite_labels(str(out / "model.tflite")) == classes
    assert "the 3 labels inside model.tflite are the run's classes" in result.verification.rule
    assert "labels_inside" in json.loads((out / "model.json").read_text())
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    embed = tflite_metadata.embed_labels
    monkeypatch.setattr(  # a writer bug: the labels in another order
        tflite_metadata, "embed_labels", lambda model, labels, **kw: embed(model, labels[::-1], **kw)
    )
    with pytest.raises(DeployError, match=r"labels inside model\.tflite are not the run.s classes"):
        export_format(probe_run, "tflite", out=out)
    monkeypatch.setattr(tflite_metadata, "embed_labels", lambda model, labels, **kw: model)  # none at all
    with pytest.raises(DeployError, match=r"no labels inside model\.tflite"):
        export_format(probe_run, "tflite", out=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the verified one stays
    assert [p.name for p in tmp_path.iterdir()] == ["tflite"]  # nothing half-made beside it


def test_the_check_reports_the_labels_it_read(plain_model, tmp_path):
    labelled = tmp_path / "model.tflite"
    labelled.write_bytes(embed_labels(plain_model.read_bytes(), ["p", "q", "r"], image_size=8))
    images = np.zeros((2, 8, 8, 3), np.uint8)
    assert runtime_check.check("tflite", str(labelled), images)["labels"] == ["p", "q", "r"]
    assert "labels_error" in runtime_check.check("tflite", str(plain_model), images)
