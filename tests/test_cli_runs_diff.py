"""`runs --diff` and `compare`'s table: intervals, a tie verdict, names a person knows, and user text
printed verbatim (rich never reads it as markup). Run folders are written by hand: no training."""

from __future__ import annotations

import io
import json
from pathlib import Path

from tlstudio.cli import main
from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import defaults


def write_run(folder: Path, right: list[bool], fingerprint: str = "abc", **settings) -> Path:
    folder.mkdir(parents=True)
    s = defaults().but(**({"backbone": "b"} | settings))
    (folder / files.SETTINGS).write_text(json.dumps(s.to_dict()))
    info = {"status": "completed", "started": "2026-11-23T10:00", "manifest_fingerprint": fingerprint}
    (folder / files.RUN_JSON).write_text(json.dumps(info))
    accuracy = sum(right) / len(right)
    metrics = {"test_accuracy": accuracy, "test_images": len(right), "best_epoch": 2}
    (folder / files.METRICS).write_text(json.dumps(metrics))
    records = [
        {"path": f"x/{i}.png", "true": "x", "predicted": "x" if ok else "y", "confidence": 0.9, "p_true": 0.9}
        for i, ok in enumerate(right)
    ]
    (folder / files.EVALUATION).write_text(json.dumps({"accuracy": accuracy, "predictions": records}))
    return folder


def test_runs_diff_shows_intervals_a_verdict_cli_names_and_best_epoch_from_one(tmp_path, capsys):
    write_run(tmp_path / "01-transfer", [True] * 13 + [False] * 6, early_stopping_patience=3)
    write_run(tmp_path / "02-baseline", [True] * 11 + [False] * 8, weights="none")
    assert main(["runs", str(tmp_path), "--diff", "1", "2"]) == 0
    text = capsys.readouterr().out
    assert "95% interval" in text and "0.46–0.85" in text and "0.36–0.77" in text
    assert "Verdict: tie: 01-transfer and 02-baseline cannot be told apart" in text
    assert "McNemar, 19 paired test images" in text
    assert "Early-stopping patience (--patience)" in text and "Weights (--weights)" in text
    assert "early_stopping_patience" not in text
    best = next(line for line in text.splitlines() if line.strip().startswith("best_epoch"))
    assert best.split()[1:] == ["3", "3"]  # stored 2 (from 0): the third epoch
    assert main(["runs", str(tmp_path), "--diff", "1", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"]["outcome"] == "tie" and data["verdict"]["p_value"] > 0.05
    assert data["accuracy"][0]["images"] == 19
    assert {r["setting"] for r in data["settings_diff"]} == {"early_stopping_patience", "weights"}


def test_runs_diff_of_runs_on_other_data_says_it_is_not_paired(tmp_path, capsys):
    write_run(tmp_path / "a", [True] * 19, fingerprint="one")
    write_run(tmp_path / "b", [True] * 10 + [False] * 9, fingerprint="two")
    assert main(["runs", str(tmp_path), "--diff", "a", "b"]) == 0
    text = capsys.readouterr().out
    assert "same data: NO" in text and "not paired" in text and "McNemar" not in text


def test_run_and_file_names_with_brackets_are_printed_verbatim(tmp_path, capsys):
    write_run(tmp_path / "[bold]x", [True] * 4, backbone="/models/[red]net.keras")  # markup, unclosed
    assert main(["runs", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "[bold]x" in text and "[red]net.keras" in text


def test_the_export_table_keeps_brackets_in_errors_and_folders(capsys):
    from tlstudio.cli.export import print_table
    from tlstudio.core.deploy.formats import DeployResult

    error = "onnx needs tf2onnx: pip install 'tlstudio[export]'"
    previous = {"verification": {"agreement": 1.0, "size_bytes": 2000}}
    results = [
        DeployResult("onnx", "float32", None, None, error=error),
        DeployResult(
            "tflite",
            "float32",
            Path("runs/[bold]x[/bold]/export/tflite"),
            None,
            error="tflite: [b]no[/b] disk",
            exported_at="2026-01-01T00:00[Z]",
            previous=previous,
        ),
    ]
    print_table(results)
    text = capsys.readouterr().out
    assert "pip install 'tlstudio[export]'" in text
    assert "runs/[bold]x[/bold]/export/tflite" in text and "[b]no[/b] disk" in text and "00:00[Z]" in text


def test_a_progress_step_naming_a_file_with_brackets_is_shown_verbatim():
    from tlstudio.core import events as ev
    from tlstudio.progress import ProgressPrinter

    stream = io.StringIO()
    printer = ProgressPrinter(stream, live=True)
    printer(ev.Working(step="reading [bold]cat[/bold].png", done=1, total=2))
    printer._bar.refresh()
    printer._stop_bar()
    assert "reading [bold]cat[/bold].png" in stream.getvalue()


def test_compare_table_has_intervals_ties_and_a_verdict_line(tmp_path):
    from tlstudio.core.training.comparison import ComparisonRow, format_table, judge

    outcomes = {
        "pretrained": [True] * 13 + [False] * 6,
        "pretrained [none]": [True] * 12 + [False] * 7,
        "pretrained from scratch": [True] * 7 + [False] * 12,
    }
    rows = []
    for i, (name, right) in enumerate(outcomes.items(), start=1):
        folder = write_run(tmp_path / f"0{i}", right)
        rows.append(ComparisonRow(name, "b", "completed", str(folder), test_accuracy=sum(right) / 19))
    rows.append(ComparisonRow("broken", "b", "failed", str(tmp_path / "absent"), error="out of memory"))
    judge(rows)
    assert [r.tied_with_best for r in rows] == [True, True, False, None]
    assert (rows[0].test_images, round(rows[0].test_accuracy_low, 2)) == (19, 0.46)
    assert rows[0].versus_best is None and rows[1].versus_best.startswith("tie: ")
    assert rows[2].versus_best.startswith("pretrained better than pretrained from scratch: p=0.031")
    table = format_table(rows)
    assert "95% interval" in table.splitlines()[0] and "0.46–0.85" in table
    body = table.splitlines()[1:5]
    assert [line[:2] for line in body] == ["= ", "= ", "  ", "  "]  # = marks those tied with the best
    assert body[1][2:].startswith("pretrained [none] ") and body[3][2:].startswith("broken ")
    assert "(McNemar, 19 paired test images" in table
    assert json.dumps(rows[0].to_dict())
