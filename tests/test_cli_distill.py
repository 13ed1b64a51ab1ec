"""`tlstudio distill`: a tiny teacher run distilled into a tiny student, really trained, then exported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlstudio.cli import main
from tlstudio.core.results import run_folder as files


@pytest.fixture(scope="module")
def student_file(tmp_path_factory):
    """A smaller CNN than the teacher's backbone, never trained: the student starts from nothing."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    path = tmp_path_factory.mktemp("student") / "small.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, probe_run, student_file):
    """The probe run distilled into the small CNN, with a folder of unlabelled images: six new ones,
    a broken file and a copy of a test image (which must be left out)."""
    import shutil

    from factory import make_colour_dataset

    from tlstudio.core.data.split import Manifest

    fresh = make_colour_dataset(tmp_path_factory.mktemp("fresh"), per_class=2, seed=7)
    unlabelled = tmp_path_factory.mktemp("unlabelled")
    for i, image in enumerate(sorted(fresh.glob("*/*.png"))):
        shutil.copy(image, unlabelled / f"u{i}.png")
    (unlabelled / "broken.png").write_bytes(b"not a png")
    data = json.loads((probe_run / files.RUN_JSON).read_text())["data_dir"]
    test_image = Manifest.load(probe_run / files.MANIFEST).subset("test")[0].path
    shutil.copy(Path(data) / test_image, unlabelled / "leak.png")
    out = tmp_path_factory.mktemp("distilled") / "student"
    args = ["distill", str(probe_run), "--student", str(student_file), "--out", str(out)]
    args += ["--unlabelled", str(unlabelled), "--epochs", "15", "--learning-rate", "0.02"]
    return out, main([*args, "--batch-size", "8", "--json"])


@pytest.mark.slow
def test_distill_writes_a_run_that_names_its_teacher_and_agrees_with_it(distilled, probe_run, capsys):
    out, code = distilled
    assert code == 0
    info = json.loads((out / files.RUN_JSON).read_text())
    assert info["status"] == "completed"
    assert info["distilled_from"] == str(probe_run.resolve())
    assert info["distillation"]["temperature"] == 4.0 and info["distillation"]["epochs"] == 15
    assert info["distillation"]["unlabelled"]
    assert any(x["path"].endswith("broken.png") for x in info["skipped_while_training"])
    # the teacher's own split, unchanged
    assert (out / files.MANIFEST).read_text() == (probe_run / files.MANIFEST).read_text()
    c = info["teacher_comparison"]
    assert c["test_images"] > 0
    assert c["agreement"] >= 0.8, c  # colours: an easy task the teacher solves
    low, high = c["agreement_interval"]
    assert low <= c["agreement"] <= high
    assert c["student"]["parameters"] < c["teacher"]["parameters"]
    assert c["student"]["latency_ms"] > 0 and c["latency_ratio"] > 0
    metrics = json.loads((out / files.METRICS).read_text())
    assert metrics["test_agreement"] == c["agreement"]
    assert "test_accuracy_low" in metrics
    cached = __import__("numpy").load(out / files.TEACHER_PROBABILITIES)
    assert cached["probabilities"].shape[1] == len(info["classes"])
    assert (cached["labels"] == -1).sum() == 6  # the new unlabelled images: not the broken one, not the copy
    assert not any(str(p).endswith("leak.png") for p in cached["paths"])
    # its card says what it was distilled from and how it agrees (it was written before that was known)
    text = (out / "MODEL_CARD.md").read_text()
    assert "## Distillation" in text and "agreement with the teacher" in text
    assert f"{c['agreement']:.3f}" in text and "unlabelled images" in text


@pytest.mark.slow
def test_the_student_exports_and_evaluates_like_any_run(distilled, tmp_path, colour_data, capsys):
    out, _ = distilled
    capsys.readouterr()
    assert (
        main(["export", str(out), "--format", "saved_model", "--out", str(tmp_path / "exp"), "--json"]) == 0
    )
    (exported,) = json.loads(capsys.readouterr().out)
    assert exported["error"] is None and exported["verification"]["agreement"] == 1.0
    split = ["--manifest", str(out / files.MANIFEST), "--split", "test"]
    assert main(["evaluate", str(out), str(colour_data), *split, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_images"] > 0 and result["accuracy"] >= 0.8


def test_distill_refuses_bad_input_before_any_work(tmp_path, probe_run, student_file, capsys):
    def refused(*args) -> str:
        capsys.readouterr()
        assert main(["distill", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("tlstudio distill:") and "\n" not in err
        return err

    out = str(tmp_path / "student")
    assert "no such folder" in refused(
        str(tmp_path / "nothing"), "--student", str(student_file), "--out", out
    )
    assert "unknown backbone" in refused(str(probe_run), "--student", "NoSuchNet", "--out", out)
    assert "temperature" in refused(
        str(probe_run), "--student", str(student_file), "--out", out, "--temperature", "0"
    )
    assert "not a folder" in refused(
        str(probe_run), "--student", str(student_file), "--out", out, "--unlabelled", str(tmp_path / "no")
    )
    assert "teacher's own" in refused(str(probe_run), "--student", str(student_file), "--out", str(probe_run))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("mine")
    assert "--overwrite" in refused(str(probe_run), "--student", str(student_file), "--out", str(busy))
    multi = tmp_path / "multi"
    multi.mkdir()
    (multi / files.RUN_JSON).write_text(json.dumps({"status": "completed", "task": "multi_label"}))
    assert "multi-label" in refused(str(multi), "--student", str(student_file), "--out", out)
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / files.RUN_JSON).write_text(json.dumps({"status": "failed"}))
    assert "did not finish" in refused(str(failed), "--student", str(student_file), "--out", out)
    assert not (tmp_path / "student").exists()


@pytest.mark.slow
def test_a_stopped_distillation_keeps_and_exports_its_best_weights(tmp_path, probe_run, student_file):
    import threading

    from tlstudio.core import events as ev
    from tlstudio.core.training.distill import distill
    from tlstudio.core.training.distill_inputs import DistillSettings

    stop = threading.Event()

    def listen(event) -> None:
        if isinstance(event, ev.EpochEnded) and event.epoch == 1:
            stop.set()  # stops within the next batch

    settings = DistillSettings(str(student_file), epochs=50, learning_rate=0.02, batch_size=8)
    result = distill(probe_run, tmp_path / "student", settings, on_event=listen, stop=stop)
    assert result.status == "stopped"
    info = json.loads((tmp_path / "student" / files.RUN_JSON).read_text())
    assert info["status"] == "stopped" and info["best_epoch"] <= 1
    assert info["distilled_from"] == str(probe_run.resolve())
    assert (tmp_path / "student" / files.SAVED_MODEL / "saved_model.pb").is_file()
