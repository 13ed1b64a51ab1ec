"""The Python API: its examples run (as doctests, in the order they build on one another), it stays light
to import, its defaults are the settings', and bad input is refused before any work."""

from __future__ import annotations

import doctest
import inspect as pyinspect
import json
import subprocess
import sys

import pytest

import tlstudio
import tlstudio.api
from tlstudio.api import data, results, training
from tlstudio.core.settings import PREDICT_TOP, VAL_FRACTION, defaults

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def examples(module) -> list[doctest.DocTest]:
    """The examples of a module's functions (and of its own docstring), with code in them."""
    return [t for t in doctest.DocTestFinder().find(module) if t.examples]


@pytest.mark.slow  # a real run (the probe) and a real TFLite export, verified: about 30 s
def test_the_examples_run_in_order_as_a_notebook_would(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = {t.name.rsplit(".", 1)[-1]: t for m in (data, training, results) for t in examples(m)}
    assert set(found) == set(tlstudio.api.EXAMPLE_ORDER)  # every function shows itself at work
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    shared: dict[str, object] = {}  # one namespace: each example uses what the earlier ones made
    for name in tlstudio.api.EXAMPLE_ORDER:
        test = found[name]
        test.globs = {**vars(tlstudio.api), **shared}
        runner.run(test)
        shared.update({k: v for k, v in test.globs.items() if not k.startswith("__")})
        assert runner.failures == 0, f"the example of {name} failed (see the output above)"
    assert runner.tries >= 15


def test_a_failing_example_is_caught(
    tmp_path, monkeypatch
):  # (the test above cannot pass by a broken runner)
    monkeypatch.chdir(tmp_path)
    (test,) = [t for t in examples(data) if t.name.endswith(".inspect")]
    test.globs = dict(vars(tlstudio.api))
    test.examples[-1].want = "False\n"  # split.csv is written: a wrong claim
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=lambda _: None)
    assert runner.failures == 1


def test_importing_tlstudio_and_its_api_loads_no_heavy_module():
    code = (
        "import sys, json, tlstudio\n"
        "from tlstudio import inspect, train, evaluate, export, predict, rank\n"
        "heavy = ('numpy', 'PIL', 'tensorflow', 'keras', 'PySide6', 'scipy', 'sklearn')\n"
        "print(json.dumps([inspect.__module__, sorted(m for m in heavy if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    module, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert module == "tlstudio.api.data" and heavy == []


def test_the_package_names_the_api_and_nothing_else():
    assert {name: getattr(tlstudio, name) for name in tlstudio.api.__all__} == {
        name: getattr(tlstudio.api, name) for name in tlstudio.api.__all__
    }
    assert set(tlstudio.api.__all__) <= set(dir(tlstudio))
    with pytest.raises(AttributeError, match="no attribute 'fit'"):
        tlstudio.fit  # noqa: B018


def test_train_keyword_defaults_are_the_settings_defaults():
    d = defaults()
    for name, parameter in pyinspect.signature(tlstudio.train).parameters.items():
        if name == "batch_size":
            assert parameter.default == ("auto" if d.auto_batch_size else d.batch_size)
        elif name in d.__dataclass_fields__ and parameter.default is not parameter.empty:
            assert parameter.default == getattr(d, name), name
    assert pyinspect.signature(tlstudio.inspect).parameters["val_fraction"].default == VAL_FRACTION
    assert pyinspect.signature(tlstudio.predict).parameters["top"].default == PREDICT_TOP


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda p: tlstudio.inspect(p / "nowhere"), "not a folder or a labels CSV"),
        (lambda p: tlstudio.inspect(p, val_fraction=0.6, test_fraction=0.5), "leave images for training"),
        (lambda p: tlstudio.train(p, p / "run", backbone="x", learning_rate=-1), "learning_rate"),
        (lambda p: tlstudio.train(p, p / "run", backbone="x", warmup=3), "takes no setting warmup"),
        (lambda p: tlstudio.train(p, p / "run", backbone="x", auto_batch_size=False), "auto_batch_size"),
        (lambda p: tlstudio.train(p / "nowhere", p / "run", backbone="x"), "not a folder"),
        (lambda p: tlstudio.rank(p, [" "]), "no backbone"),
        (lambda p: tlstudio.rank(p, ["a", "a"]), "twice"),
        (lambda p: tlstudio.predict(p, [p], top=0), "at least 1"),
        (lambda p: tlstudio.evaluate(p, p, split="dev"), "train, val or test"),
    ],
)
def test_bad_input_is_refused_with_a_reason_before_any_work(tmp_path, call, reason):
    with pytest.raises(ValueError, match=reason):
        call(tmp_path)
    assert not (tmp_path / "run").exists()


def test_export_refuses_what_is_not_a_run(tmp_path):
    from tlstudio.core.deploy.run_inputs import DeployError

    with pytest.raises(DeployError, match="not a run folder"):
        tlstudio.export(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tlstudio.predict(tmp_path / "nowhere", [tmp_path])
