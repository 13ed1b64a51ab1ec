"""TF.js graph models: written by hand (the tensorflowjs converter does not install beside TF 2.21),
checked by TensorFlow.js on its pure-JS CPU backend in a fresh Node process, put in place atomically;
refused with the reason where Node.js or the check's packages are missing."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tlstudio.core.deploy import formats, tfjs_format
from tlstudio.core.deploy.format_list import unavailable
from tlstudio.core.deploy.formats import DeployError, export_format

needs_node = pytest.mark.skipif(
    tfjs_format.missing() is not None, reason=str(tfjs_format.missing())
)  # .ci/run installs the packages: npm ci --prefix tlstudio/core/deploy/tfjs


@pytest.fixture(scope="module")
def exported(probe_run, tmp_path_factory):
    """The shared tiny run exported once to TF.js (outside the run's own export folder)."""
    out = tmp_path_factory.mktemp("tfjs") / "export" / "tfjs"
    return export_format(probe_run, "tfjs", out=out), out


@pytest.mark.slow
@needs_node
def test_the_graph_model_verifies_in_tensorflow_js(probe_run, exported):
    result, folder = exported
    assert result.folder == folder and result.status == "new"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["index.html", "labels.txt", "model.json", "tfjs_model"]
    assert sorted(p.name for p in (folder / "tfjs_model").iterdir()) == ["group1-shard1of1.bin", "model.json"]
    check = result.verification
    assert check.passed and check.agreement >= formats.MIN_AGREEMENT, check.rule
    assert check.max_probability_difference < 1e-4  # float32 in JS against float32 in TensorFlow
    assert check.latency_ms_median > 0 and check.latency_ms_p95 >= check.latency_ms_median
    assert check.throughput_images_per_second > 0
    assert check.size_bytes == sum(p.stat().st_size for p in (folder / "tfjs_model").iterdir())
    graph = json.loads((folder / "tfjs_model" / "model.json").read_text())
    assert graph["format"] == "graph-model"
    consts = [n for n in graph["modelTopology"]["node"] if n["op"] == "Const"]
    (group,) = graph["weightsManifest"]
    assert [w["name"] for w in group["weights"]] == [n["name"] for n in consts]
    assert not any("tensorContent" in n["attr"]["value"]["tensor"] for n in consts)  # values in the shard
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format"] == "tfjs" and meta["file"] == "tfjs_model"
    assert meta["client"].startswith("index.html")
    assert meta["labels"] == (probe_run / "labels.txt").read_text().splitlines()


@pytest.mark.slow
@needs_node
def test_the_sample_page_uses_what_the_export_holds_and_the_verified_version(exported):
    _, folder = exported
    page = (folder / "index.html").read_text()
    fetched = set(re.findall(r"(?:fetch|loadGraphModel)\('([^']+)'\)", page))
    assert fetched == {"model.json", "tfjs_model/model.json"} and all((folder / f).is_file() for f in fetched)
    meta = json.loads((folder / "model.json").read_text())
    assert "about.input.image_size" in page and isinstance(meta["input"]["image_size"], int)
    assert "about.labels" in page and meta["labels"]
    graph = json.loads((folder / "tfjs_model" / "model.json").read_text())
    assert "graph.userDefinedMetadata.output" in page and graph["userDefinedMetadata"]["output"]
    package = json.loads((tfjs_format.CHECK_FOLDER / "package.json").read_text())
    assert f"@tensorflow/tfjs@{package['dependencies']['@tensorflow/tfjs-core']}/" in page


@pytest.mark.slow
@needs_node
def test_a_broken_conversion_leaves_the_verified_one(probe_run, exported, monkeypatch):
    _, folder = exported
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    convert = tfjs_format.convert

    def scrambled(model, path, image_size):  # a writer bug: other values in the float weights
        convert(model, path, image_size)
        (shard,) = path.glob("*.bin")
        data = bytearray(shard.read_bytes())
        offset, rng = 0, np.random.default_rng(0)
        for spec in json.loads((path / "model.json").read_text())["weightsManifest"][0]["weights"]:
            size = 4 * int(np.prod(spec["shape"], dtype=np.int64))
            if spec["dtype"] == "float32":
                data[offset : offset + size] = rng.normal(0, 1, size // 4).astype("<f4").tobytes()
            offset += size
        shard.write_bytes(bytes(data))

    monkeypatch.setattr(tfjs_format, "convert", scrambled)
    with pytest.raises(DeployError, match="did not verify"):
        export_format(probe_run, "tfjs", out=folder)

    def unknown_op(model, path, image_size):  # an op TF.js does not have
        convert(model, path, image_size)
        graph = json.loads((path / "model.json").read_text())
        next(n for n in graph["modelTopology"]["node"] if n["op"] == "Softmax")["op"] = "NoSuchOp"
        (path / "model.json").write_text(json.dumps(graph))

    monkeypatch.setattr(tfjs_format, "convert", unknown_op)
    with pytest.raises(DeployError, match="its runtime could not run it"):
        export_format(probe_run, "tfjs", out=folder)
    assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert [p.name for p in folder.parent.iterdir()] == ["tfjs"]  # no staging left behind


def test_without_node_tfjs_is_refused_with_the_reason(monkeypatch, tmp_path, capsys):
    from tlstudio.cli import export as command
    from tlstudio.cli import main

    monkeypatch.setattr(tfjs_format.shutil, "which", lambda name: None)
    assert unavailable("tfjs") == "tfjs: its check needs Node.js (node on PATH), which is not installed here"
    monkeypatch.setattr(command, "quiet_tensorflow", lambda: pytest.fail("refused too late"))
    assert main(["export", str(tmp_path), "--format", "tfjs"]) == 2
    assert "needs Node.js" in capsys.readouterr().err
    monkeypatch.setattr(tfjs_format.shutil, "which", lambda name: "/usr/bin/node")
    monkeypatch.setattr(tfjs_format, "CHECK_FOLDER", tmp_path)  # no node_modules there
    assert f"npm ci --prefix {tmp_path}" in unavailable("tfjs")
