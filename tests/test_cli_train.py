"""`tlstudio train / evaluate / predict / backbones` end to end, checked with plain TensorFlow."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from factory import make_colour_dataset
from PIL import Image

from tlstudio.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_backbone_file):
    """Train once through the real CLI in a separate process, as a user would."""
    root = tmp_path_factory.mktemp("cli")
    data = make_colour_dataset(root / "data", per_class=15, seed=4)
    run = root / "run"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tlstudio",
            "-v",
            "train",
            str(data),
            "--backbone",
            str(tiny_backbone_file),
            "--epochs",
            "12",
            "--fine-tune-epochs",
            "3",
            "--batch-size",
            "8",
            "--learning-rate",
            "0.01",
            "--no-flip",
            "--seed",
            "3",
            "--out",
            str(run),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return data, run, out


def test_train_prints_progress_and_writes_the_run(trained_run):
    _, run, out = trained_run
    assert "Phase 'probe'" in out.stderr and "Phase 'fine-tune'" in out.stderr
    assert "WiSE-FT" in out.stderr and "95% interval" in out.stderr
    assert "epoch 1/1 " in out.stderr and "epoch 2/4 " in out.stderr  # the probe, then 3 fine-tune epochs
    assert "Exported:" in out.stderr
    assert "absl::InitializeLog" not in out.stderr  # TensorFlow's start-up chatter is filtered
    assert (run / "saved_model" / "saved_model.pb").is_file()


def test_train_json_is_the_whole_stdout_and_v_logs_tensorflow(trained_run):
    _, run, out = trained_run
    outcome = json.loads(out.stdout)  # the progress stays on stderr
    assert outcome["status"] == "completed" and outcome["run_dir"] == str(run) and outcome["error"] is None
    assert outcome["export_dir"] == str(run)  # (the SavedModel, model.keras and labels.txt)
    recorded = json.loads((run / "metrics.json").read_text())
    assert outcome["metrics"]["test_accuracy"] == pytest.approx(recorded["test_accuracy"])
    assert "tlstudio INFO tlstudio.quiet_tf: TensorFlow " in out.stderr  # -v: the library's INFO lines


def test_evaluate_json_agrees_with_plain_tensorflow(trained_run, capsys):
    import tensorflow as tf

    data, run, _ = trained_run
    assert main(["evaluate", str(run), str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == ["blue", "green", "red"]
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == 45 and matrix.shape == (3, 3)

    # Independent computation: plain TF, images resized by TF inside the model's own signature.
    loaded = tf.saved_model.load(str(run / "saved_model"))
    labels = (run / "saved_model" / "assets" / "labels.txt").read_text().split()
    correct = 0
    own = np.zeros((3, 3), int)
    truths, probs = [], []
    for i, label in enumerate(labels):
        for file in sorted((data / label).iterdir()):
            img = np.asarray(Image.open(file).convert("RGB"), np.float32)[None]
            p = loaded.serve(tf.constant(img))[0].numpy()
            pred = int(np.argmax(p))
            own[i, pred] += 1
            correct += pred == i
            truths.append(i)
            probs.append(p)
    assert report["accuracy"] == pytest.approx(correct / 45)
    assert report["balanced_accuracy"] == pytest.approx(np.mean(np.diag(own) / own.sum(1)))
    low, high = report["intervals"]["balanced_accuracy"]
    assert low <= report["balanced_accuracy"] <= high and "macro_f1" in report["intervals"]
    np.testing.assert_array_equal(matrix, own)
    assert report["accuracy"] >= 0.8
    y, probs = np.array(truths), np.array(probs)
    own_loss = -np.mean(np.log(np.maximum(probs[np.arange(45), y], 1e-7)))
    assert report["loss"] == pytest.approx(own_loss, abs=1e-4)
    for i, label in enumerate(labels):
        row = report["per_class"][label]
        assert row["support"] == own[i].sum() and row["recall"] == pytest.approx(own[i, i] / own[i].sum())
        pos, neg = probs[y == i, i], probs[y != i, i]
        pairwise = np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg])
        assert report["auc"]["per_class"][label] == pytest.approx(pairwise, abs=1e-3)
    assert report["top_k"]["1"] == report["accuracy"]
    assert 0 <= report["ece"] <= 1 and len(report["reliability"]) == 10
    assert set(report["averages"]) == {"macro", "weighted"}


def test_evaluate_writes_an_html_report_with_grad_cam(trained_run, tmp_path, capsys):
    data, run, _ = trained_run
    out = tmp_path / "report.html"
    assert main(["evaluate", str(run), str(data), "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "macro F1" in text and "ECE" in text
    assert re.search(r"Balanced accuracy [\d.]+ \(95% interval [\d.]+–[\d.]+\), macro F1 [\d.]+ \(95%", text)
    html = out.read_text()
    assert "Confusion matrix" in html and "Learning curves" in html and "Settings" in html
    if "No errors." not in html:
        assert "Grad-CAM" in html


def test_evaluate_on_the_test_split_of_the_manifest(trained_run, capsys):
    data, run, _ = trained_run
    assert (
        main(
            [
                "evaluate",
                str(run / "saved_model"),
                str(data),
                "--manifest",
                str(run / "manifest.csv"),
                "--split",
                "test",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    tests = sum(1 for line in (run / "manifest.csv").read_text().splitlines() if line.endswith(",test"))
    assert report["num_images"] == tests
    assert main(["evaluate", str(run), str(data), "--split", "test", "--json"]) == 0  # the run's own split
    assert json.loads(capsys.readouterr().out)["num_images"] == tests
    assert main(["evaluate", str(run / "saved_model"), str(data), "--split", "test"]) == 2  # never all images
    assert "--split needs --manifest" in capsys.readouterr().err


def test_predict_json_and_a_bad_file(trained_run, tmp_path, capsys, monkeypatch):
    data, run, _ = trained_run
    good = sorted((data / "red").iterdir())[0]
    bad = tmp_path / "x.jpg"
    bad.write_text("<html></html>")
    assert main(["predict", str(run), str(good), str(bad), "--json", "--top", "2"]) == 1
    items = json.loads(capsys.readouterr().out)
    assert (
        len(items[0]["top"]) == 2 and items[0]["top"][0]["probability"] >= items[0]["top"][1]["probability"]
    )
    assert "HTML" in items[1]["error"]
    from tlstudio.core.results import evaluation

    # only missing images: refused before the model loads (seconds)
    monkeypatch.setattr(evaluation, "load_exported", lambda path: pytest.fail("loaded for nothing"))
    assert main(["predict", str(run), str(tmp_path / "gone.png")]) == 2
    assert main(["predict", str(run), str(good), "--top", "0"]) == 2  # it printed an empty line
    assert "no such image:" in capsys.readouterr().err


def test_backbones_json_lists_the_registry(capsys):
    assert main(["backbones", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"ResNet50", "EfficientNetB0"} <= names
    assert all({"family", "params", "default_size", "min_size", "preprocessing"} <= set(r) for r in rows)


def test_train_refuses_bad_input_with_one_line(tmp_path, capsys):
    assert (
        main(["train", str(tmp_path / "nope"), "--backbone", "ResNet50", "--out", str(tmp_path / "r")]) == 2
    )
    assert "is not a folder" in capsys.readouterr().err
    make_colour_dataset(tmp_path / "d", per_class=3)
    assert (
        main(
            [
                "train",
                str(tmp_path / "d"),
                "--backbone",
                "ResNet50",
                "--freeze",
                "half",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "freeze plan" in capsys.readouterr().err


def test_unknown_backbone_fails_the_run_with_a_hint(tmp_path, capsys):
    make_colour_dataset(tmp_path / "d", per_class=3)
    assert main(["train", str(tmp_path / "d"), "--backbone", "resnet5", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "unknown backbone 'resnet5'" in err and "What to do" in err
    assert not (tmp_path / "r").exists()  # refused before the run folder was claimed: nothing left behind


def test_augmentation_flags_reach_the_settings():
    from tlstudio.cli import build_parser, settings_from_args

    def parsed(*extra):
        return settings_from_args(
            build_parser().parse_args(["train", "d", "--backbone", "x", "--out", "o", *extra])
        )

    assert parsed().augmentation.flip
    assert not parsed("--no-flip").augmentation.flip and parsed("--no-flip").augmentation.rotation > 0
    assert not parsed("--no-augment").augmentation.active


def test_train_that_cannot_learn_exits_3_and_says_what_to_try(tmp_path, tiny_backbone_file, capsys):
    from factory import make_class_folder

    data = tmp_path / "noise"
    for i, label in enumerate(("a", "b", "c")):
        make_class_folder(data, label, 14, seed=10 + i, size=(32, 32))
    code = main(
        [
            "train",
            str(data),
            "--backbone",
            str(tiny_backbone_file),
            "--out",
            str(tmp_path / "run"),
            "--fine-tune-epochs",
            "1",
            "--batch-size",
            "8",
            "--val",
            "0.3",
        ]
    )
    out = capsys.readouterr().err
    assert code == 3, out
    assert "failed_to_learn" in out and "did not learn" in out and "Try" in out
    assert not (tmp_path / "run" / "saved_model").exists()


def test_lr_find_prints_a_suggestion_and_draws_the_curve(tmp_path, tiny_backbone_file, capsys):
    data = make_colour_dataset(tmp_path / "data", per_class=10, seed=2)
    args = ["lr-find", str(data), "--backbone", str(tiny_backbone_file), "--steps", "30", "--batch-size", "8"]
    assert main([*args, "--plot", str(tmp_path / "lr.png")]) in (0, 1)
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    data_out = json.loads(capsys.readouterr().out)
    assert len(data_out["rates"]) >= 5 and data_out["rates"] == sorted(data_out["rates"])
    assert (
        data_out["suggestion"] is None
        or data_out["rates"][0] <= data_out["suggestion"] <= data_out["rates"][-1]
    )


def test_batch_size_device_and_precision_flags_reach_the_settings(capsys):
    from tlstudio.cli import build_parser, settings_from_args
    from tlstudio.cli.train import given_options
    from tlstudio.core.settings import TrainSettings

    def args(*extra):
        return build_parser().parse_args(["train", "d", "--backbone", "x", "--out", "o", *extra])

    auto = settings_from_args(args())
    assert (auto.batch_size, auto.auto_batch_size, auto.mixed_precision, auto.device) == (
        32,
        True,
        "auto",
        "auto",
    )
    mine = settings_from_args(args("--batch-size", "16", "--mixed-precision", "--device", "GPU:1"))
    assert (mine.batch_size, mine.auto_batch_size, mine.mixed_precision, mine.device) == (
        16,
        False,
        "on",
        "gpu:1",
    )
    assert settings_from_args(args("--mixed-precision", "off")).mixed_precision == "off"
    for bad in (
        ["--batch-size", "0"],
        ["--batch-size", "big"],
        ["--device", "tpu"],
        ["--mixed-precision", "x"],
    ):
        with pytest.raises(SystemExit) as exit_:
            args(*bad)
        assert exit_.value.code == 2
    capsys.readouterr()
    # where a project trains is the machine's business: --device goes with --project, --batch-size not
    assert given_options(args("--device", "cpu"), {"strategy", "overwrite", "device"}) == []
    assert given_options(args("--batch-size", "8"), {"strategy", "overwrite", "device"}) == ["--batch-size"]
    # projects saved before "auto": a ticked box was "on", an unticked one the old default
    legacy = TrainSettings(backbone="x").to_dict()
    assert TrainSettings.from_dict({**legacy, "mixed_precision": True}).mixed_precision == "on"
    assert TrainSettings.from_dict({**legacy, "mixed_precision": False}).mixed_precision == "auto"
    with pytest.raises(ValueError, match="device must be"):
        TrainSettings.from_dict({**legacy, "device": "gpu"})


def test_devices_lists_what_tensorflow_sees(capsys):
    assert main(["devices", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gpus"] == [] and out["default"] == "cpu"  # this machine has no GPU
    assert out["devices"][0] == {
        "device": "cpu",
        "describe": "CPU",
        "mixed_precision": False,
        "why": "auto: a CPU gains nothing from float16",
    }
    assert main(["devices"]) == 0
    assert "--device auto uses cpu" in capsys.readouterr().out


def test_train_refuses_what_it_would_ignore_or_cannot_use_before_any_work(
    tmp_path, colour_data, tiny_backbone_file, capsys, monkeypatch
):
    from tlstudio.cli import train as command
    from tlstudio.core.project import Project
    from tlstudio.core.settings import TrainSettings

    monkeypatch.setattr(command, "quiet_tensorflow", lambda: pytest.fail("refused too late"))
    settings = TrainSettings(backbone=str(tiny_backbone_file), epochs=1)
    project = Project(data_dir=str(colour_data), settings=settings).save(tmp_path / "p.tlstudio.json")
    base = ["train", "--out", str(tmp_path / "r")]
    cases = {
        "DATA_DIR": [*base, str(colour_data), "--project", str(project)],
        "--backbone": [*base, "--project", str(project), "--backbone", "NoSuchNet"],
        "the split": [
            *base,
            str(colour_data),
            "--backbone",
            "x.keras",
            "--manifest",
            str(tmp_path / "m.csv"),
        ],
        "leave at least a tenth": [
            *base,
            str(colour_data),
            "--backbone",
            "x",
            "--val",
            "0.5",
            "--test",
            "0.45",
        ],
        "dropout": [*base, str(colour_data), "--backbone", "x", "--dropout", "1.5"],
    }
    for expected, argv in cases.items():
        assert main(argv) == 2, expected
        assert expected in capsys.readouterr().err
    run = tmp_path / "old_run"  # a run folder whose run.json was lost
    run.mkdir()
    (run / "settings.json").write_text(json.dumps(settings.to_dict()))
    (run / "manifest.csv").write_text("path,label,split\n")
    assert main(["train", "--resume", str(run), "--out", str(tmp_path / "elsewhere")]) == 2
    assert "in its own folder; remove --out" in capsys.readouterr().err
    assert main(["train", "--resume", str(run)]) == 2
    assert "run.json is missing or unreadable: give the data folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # no run folder for any of them
