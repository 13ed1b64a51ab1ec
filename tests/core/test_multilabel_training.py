"""Multi-label training end to end: `tlstudio train labels.csv`, sigmoid head, probe, fine-tune, WiSE-FT,
thresholds, the test split's scores and the SavedModel."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from factory import make_multilabel_csv

from tlstudio.cli import main
from tlstudio.core.data.split import Manifest
from tlstudio.core.results import run_folder as files

pytestmark = pytest.mark.slow  # real training, once per module


@pytest.fixture(scope="module")
def multilabel_csv(tmp_path_factory):
    return make_multilabel_csv(tmp_path_factory.mktemp("ml") / "data", n=64)


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory, multilabel_csv, tiny_backbone_file):
    """One multi-label run through the CLI: probe, a short fine-tune and WiSE-FT."""
    out = tmp_path_factory.mktemp("ml-run") / "run"
    code = main(
        [
            "train",
            str(multilabel_csv),
            "--backbone",
            str(tiny_backbone_file),
            "--out",
            str(out),
            "--fine-tune-epochs",
            "2",
            "--batch-size",
            "16",
        ]
    )
    assert code == 0
    return out


def test_the_run_records_a_multilabel_task_with_thresholds_and_scores(multilabel_run, multilabel_csv):
    run = json.loads((multilabel_run / files.RUN_JSON).read_text())
    assert run["task"] == "multi_label" and run["classes"] == ["blue", "green", "red", "yellow"]
    assert run["data"] == str(multilabel_csv.resolve())
    assert Manifest.load(multilabel_run / files.MANIFEST).multi_label
    thresholds = json.loads((multilabel_run / files.THRESHOLDS).read_text())
    assert list(thresholds) == run["classes"] and all(0 < t < 1 for t in thresholds.values())
    history = json.loads((multilabel_run / files.HISTORY).read_text())
    assert [e["phase"] for e in history["epochs"]][:1] == ["probe"]
    assert any(e["phase"] != "probe" for e in history["epochs"])  # the fine-tune ran
    assert "interpolation" in history  # WiSE-FT
    metrics = json.loads((multilabel_run / files.METRICS).read_text())
    assert metrics["test_macro_map"] > 0.8  # colours in quadrants: the tiny backbone's features see them
    assert metrics["test_macro_map_low"] <= metrics["test_macro_map"] <= metrics["test_macro_map_high"]
    evaluation = json.loads((multilabel_run / files.EVALUATION).read_text())
    assert set(evaluation["per_label"]) == set(run["classes"])
    assert evaluation["thresholds"] == thresholds


def test_the_savedmodel_gives_one_independent_probability_per_label(multilabel_run):
    import tensorflow as tf

    saved = multilabel_run / files.SAVED_MODEL
    loaded = tf.saved_model.load(str(saved))
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3)).astype(np.float32)
    probs = loaded.signatures["serving_default"](images=tf.constant(images))["output_0"].numpy()
    assert probs.shape == (6, 4)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert not np.allclose(probs.sum(1), 1.0, atol=1e-3)  # sigmoid outputs, not a softmax
    assert (multilabel_run / files.THRESHOLDS).is_file()
    assert json.loads((saved / "assets" / files.THRESHOLDS).read_text()) == json.loads(
        (multilabel_run / files.THRESHOLDS).read_text()
    )
    meta = json.loads((multilabel_run / files.METADATA).read_text())
    assert meta["task"] == "multi_label" and len(meta["thresholds"]) == 4


def test_evaluate_prints_the_multilabel_scores_and_json(multilabel_run, multilabel_csv, capsys):
    assert main(["evaluate", str(multilabel_run), str(multilabel_csv), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task"] == "multi_label" and data["num_images"] == 64
    assert {"macro_map", "micro_map", "subset_accuracy", "hamming_loss", "intervals"} <= set(data)
    assert data["thresholds"] == json.loads((multilabel_run / files.THRESHOLDS).read_text())
    assert main(["evaluate", str(multilabel_run), str(multilabel_csv), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "macro mAP" in out and "Hamming loss" in out and "threshold" in out
    test = json.loads((multilabel_run / files.EVALUATION).read_text())
    assert f"Multi-label: {test['num_images']} images" in out  # the run's own test split


def test_evaluate_gives_curves_calibration_and_an_html_report_per_label(
    multilabel_run, multilabel_csv, tmp_path, capsys
):
    out = tmp_path / "report.html"
    args = ["evaluate", str(multilabel_run), str(multilabel_csv), "--split", "test"]
    assert main([*args, "--json", "--report", str(out)]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    labels = ["blue", "green", "red", "yellow"]
    assert set(data["pr_curves"]) == set(data["calibration"]) == set(labels)
    for name in labels:
        curve = data["pr_curves"][name]
        assert len(curve["recall"]) == len(curve["precision"]) == len(curve["thresholds"]) + 1
        assert 0 <= data["per_label"][name]["ece"] == data["calibration"][name]["ece"] <= 1
    assert data["macro_ece"] is not None and f"Report written to {out}" in captured.err
    html = out.read_text(encoding="utf-8")
    for heading in (
        "Summary",
        "Learning curves",
        "Settings",
        "Per label",
        "Precision–recall curves",
        "Calibration",
    ):
        assert f"<h2>{heading}</h2>" in html, heading
    assert all(f"<td>{name}</td>" in html for name in labels)
    assert html.count("src='data:image/png;base64,") >= 3  # learning curves, PR curves, calibration
    assert main(args) == 0  # the text: ECE per label and the macro ECE
    text = capsys.readouterr().out
    assert "macro ECE" in text and text.splitlines()[5].rstrip().endswith("ECE")
    assert "<h2>Precision–recall curves</h2>" in (multilabel_run / files.REPORT).read_text(encoding="utf-8")


def test_evaluate_refuses_labels_the_model_does_not_know(multilabel_run, multilabel_csv, capsys):
    text = multilabel_csv.read_text().replace(",red", ",purple", 1)
    other = multilabel_csv.with_name("other.csv")
    other.write_text(text)
    assert main(["evaluate", str(multilabel_run), str(other)]) == 2
    err = capsys.readouterr().err
    assert "purple" in err and err.count("\n") == 1


def test_predict_prints_the_labels_above_their_thresholds(multilabel_run, multilabel_csv, capsys):
    images = sorted((multilabel_csv.parent / "images").glob("*.png"))[:4]
    assert main(["predict", str(multilabel_run), *map(str, images), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    rows = dict(line.split(",", 1) for line in multilabel_csv.read_text().splitlines()[1:])
    thresholds = json.loads((multilabel_run / files.THRESHOLDS).read_text())
    for item, image in zip(results, images, strict=True):
        above = {x for x, p in item["probabilities"].items() if p >= thresholds[x]}
        assert {x["label"] for x in item["labels"]} == above
        assert above == set(filter(None, rows[f"images/{image.name}"].split(";")))  # learnt: all right
    assert main(["predict", str(multilabel_run), str(images[0])]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(images[0])) and all(x["label"] in line for x in results[0]["labels"])


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "saved_model"])
def test_every_format_checks_label_decisions_and_carries_the_thresholds(multilabel_run, multilabel_csv, fmt):
    from tlstudio.core.deploy.formats import export_format

    result = export_format(multilabel_run, fmt)
    assert result.error is None, result.error
    check = result.verification
    assert "label-decision agreement" in check.rule and check.agreement >= 0.995
    assert set(check.per_class) == {"blue", "green", "red", "yellow"}
    thresholds = json.loads((result.folder / files.THRESHOLDS).read_text())
    assert thresholds == json.loads((multilabel_run / files.THRESHOLDS).read_text())
    description = json.loads((result.folder / files.EXPORT_DESCRIPTION).read_text())
    assert "independent probabilities per label" in description["output"]
    if fmt == "tflite":  # the thresholds inside the file too, read back by the check
        import zipfile

        with zipfile.ZipFile(result.folder / "model.tflite") as packed:
            assert json.loads(packed.read("thresholds.json")) == thresholds
        assert "labels and thresholds inside model.tflite" in check.rule
    # the sample client beside it prints the labels at or above their thresholds, not a top-3
    image = sorted(multilabel_csv.parent.rglob("*.png"))[0]
    client = next(result.folder.glob("predict_*.py"))
    done = subprocess.run(
        [sys.executable, str(client), str(image), "--json"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    said = json.loads(done.stdout)
    given = [k for k, v in said["probabilities"].items() if v >= thresholds[k]]
    assert sorted(said["labels"]) == sorted(given)


def test_train_with_defaults_only(tmp_path, tiny_backbone_file):
    csv = make_multilabel_csv(tmp_path / "data", n=40, seed=4)
    out = tmp_path / "run"
    assert main(["train", str(csv), "--backbone", str(tiny_backbone_file), "--out", str(out)]) == 0
    run = json.loads((out / files.RUN_JSON).read_text())
    assert run["status"] == "completed" and run["task"] == "multi_label"
    assert (out / files.SAVED_MODEL / "saved_model.pb").is_file() and (out / files.THRESHOLDS).is_file()


def test_try_it_gives_the_labels_above_their_thresholds(multilabel_run, multilabel_csv):
    from tlstudio.core.results.try_it import Tryout

    model = Tryout(multilabel_run)
    rows = dict(line.split(",", 1) for line in multilabel_csv.read_text().splitlines()[1:])
    for rel in list(rows)[:3]:
        verdict = model.classify(multilabel_csv.parent / rel)
        assert {label for label, _ in verdict.top} == set(filter(None, rows[rel].split(";")))
        words = model.confidence_words(verdict)
        assert "threshold" in words and all(label in words for label, _ in verdict.top)


def test_openvino_int8_is_refused_for_a_multilabel_model(multilabel_run):
    from tlstudio.core.deploy.formats import export_format
    from tlstudio.core.deploy.run_inputs import DeployError

    with pytest.raises(DeployError, match="single-label models only"):
        export_format(multilabel_run, "openvino", quantize="int8")


def test_lr_find_measures_the_sigmoid_heads_binary_cross_entropy(
    multilabel_csv, tiny_backbone_file, tmp_path, capsys
):
    args = ["lr-find", str(multilabel_csv), "--backbone", str(tiny_backbone_file), "--steps", "30"]
    args += ["--batch-size", "16", "--dropout", "0"]  # (the head's dropout would blur the first losses)
    assert main([*args, "--json", "--plot", str(tmp_path / "lr.png")]) == 0
    curve = json.loads(capsys.readouterr().out)
    assert len(curve["rates"]) >= 5 and curve["rates"] == sorted(curve["rates"])
    assert all(np.isfinite(curve["losses"]))
    # the probe's sigmoids start it: per-label cross-entropy far below ln 2 (a head that knows nothing)
    assert np.mean(curve["losses"][:5]) < 0.2, curve["losses"][:5]
    assert curve["suggestion"] is None or curve["rates"][0] <= curve["suggestion"] <= curve["rates"][-1]
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["lr-find", str(multilabel_csv.with_name("nope.csv")), "--backbone", "x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
