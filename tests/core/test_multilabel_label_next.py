"""Label next and the label check on multi-label data with a real (tiny) backbone: `tlstudio suggest` on a
multi-label run, `tlstudio inspect labels.csv --label-issues` finding labels dropped and added on purpose."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factory import MULTI_LABEL_COLOURS, encode, make_multilabel_csv, write

from tlstudio.cli import main
from tlstudio.core.data.labels_csv import read_labels_csv
from tlstudio.core.training.label_next import select_to_label, suggest
from tlstudio.core.training.label_next_multilabel import label_closeness, label_uncertainty


def test_closeness_is_one_at_each_labels_threshold_and_zero_at_the_sure_ends():
    t = np.array([0.5, 0.2])
    probs = np.array([[0.5, 0.2], [0.0, 1.0], [0.75, 0.1], [1.0, 0.0]])
    np.testing.assert_allclose(label_closeness(probs, t), [[1, 1], [0, 0], [0.5, 0.5], [0, 0]])
    np.testing.assert_allclose(label_uncertainty(probs, t), [1, 0, 0.5, 0])
    features = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]])
    scores = np.array([1.0, 1.0, 0.9, 0.8])  # three look-alikes: diversity takes the fourth second
    assert select_to_label(probs, features, 2, scores=scores) == [0, 3]


def quadrants(colours: dict[str, float], seed: int) -> bytes:
    """A 32×32 grey PNG with each label's colour mixed into its quadrant by the given share."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(128, 20, (32, 32, 3)), 0, 255)
    for q, name in enumerate(sorted(MULTI_LABEL_COLOURS)):
        y, x = (q // 2) * 16, (q % 2) * 16
        share = colours.get(name, 0.0)
        img[y : y + 16, x : x + 16] = (1 - share) * img[y : y + 16, x : x + 16] + share * np.array(
            MULTI_LABEL_COLOURS[name]
        )
    return encode(img.astype(np.uint8), "PNG")


@pytest.mark.slow
def test_suggest_on_a_multilabel_run_ranks_half_shown_labels_first(multilabel_probe_run, tmp_path, capsys):
    run, _ = multilabel_probe_run
    folder = tmp_path / "unlabelled"
    for i in range(6):  # clear: full colour or none
        write(folder / f"clear_{i}.png", quadrants({"red": 1.0} if i % 2 else {"blue": 1.0}, i))
    for i, name in enumerate(("blue", "green", "yellow")):  # one label half there, each another
        write(folder / "faint" / f"half_{name}.png", quadrants({name: 0.45}, 10 + i))
    result = suggest(run, folder, n=3)
    assert result.task == "multi_label" and result.considered == 9
    assert all(x.path.startswith("clear_") for x in result.confident)  # never a half-shown label
    assert result.items[0].path.startswith("faint/")
    assert sum(s.path.startswith("faint/") for s in result.items) >= 2
    first = result.items[0]
    assert set(first.probabilities) == set(MULTI_LABEL_COLOURS) and first.least_sure in MULTI_LABEL_COLOURS
    assert 0 <= first.uncertainty <= 1 and set(first.predicted) <= set(MULTI_LABEL_COLOURS)
    assert main(["suggest", str(run), str(folder), "--n", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task"] == "multi_label" and len(data["suggestions"]) == 2
    assert set(data["suggestions"][0]) == {"path", "predicted", "probabilities", "least_sure", "uncertainty"}
    assert main(["suggest", str(run), str(folder), "--n", "2"]) == 0
    assert "least sure of" in capsys.readouterr().out


@pytest.mark.slow
def test_inspect_finds_labels_dropped_and_added_on_purpose(tmp_path, tiny_backbone_file, capsys):
    csv = make_multilabel_csv(tmp_path / "data", n=64)
    rows = list(read_labels_csv(csv).rows)
    planted = []
    for i in (9, 17, 30, 41, 52, 60):  # drop a label the image shows, or add one it does not
        path, labels = rows[i]
        if labels:
            rows[i] = (path, labels[1:])
            planted.append((path, labels[0]))
        else:
            rows[i] = (path, ("green",))
            planted.append((path, "green"))
    csv.write_text("path,labels\n" + "".join(f"{p},{';'.join(s)}\n" for p, s in rows))
    code = main(["inspect", str(csv), "--label-issues", "--backbone", str(tiny_backbone_file), "--json"])
    assert code == 0
    issues = json.loads(capsys.readouterr().out)["label_issues"]
    said = {(x["path"], label) for x in issues for label in x["missing"] + x["wrong"]}
    found = sum(p in said for p in planted)
    chance = len(said) / (len(rows) * 4)
    assert found >= 5 and found / len(planted) > 3 * chance, (found, len(said))  # measured: 6 of 6
    assert main(["inspect", str(csv), "--label-issues", "--backbone", str(tiny_backbone_file)]) == 0
    assert "Possible label errors:" in capsys.readouterr().out
