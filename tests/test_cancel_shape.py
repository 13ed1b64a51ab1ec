"""One cancelled exception: every ``…Cancelled`` in the core is a ``core.cancel.Cancelled``, and no
long call signals a cancel with a bare ``InterruptedError`` (an ``OSError``: ``except OSError`` would
swallow it)."""

from __future__ import annotations

import ast
import importlib
import threading
from pathlib import Path

import pytest

from tlstudio.core.cancel import Cancelled, check

CORE = Path(__file__).resolve().parents[1] / "tlstudio" / "core"


def _cancelled_classes() -> list[tuple[str, str]]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = ".".join(path.relative_to(CORE.parent.parent).with_suffix("").parts)
        found += [(module, n.name) for n in tree.body if isinstance(n, ast.ClassDef) and "Cancel" in n.name]
    return found


def test_every_cancelled_exception_is_one_kind():
    classes = _cancelled_classes()
    assert len(classes) >= 5, classes  # Cancelled itself and the four named for their work
    for module, name in classes:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, Cancelled), f"{module}.{name} is not a core.cancel.Cancelled"
        assert not issubclass(cls, OSError), f"{module}.{name} would be caught by `except OSError`"


def test_no_long_call_raises_a_bare_interrupted_error():
    offenders = []
    for path in sorted(CORE.parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name) and target.id == "InterruptedError":
                    offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"raise core.cancel.Cancelled instead: {offenders}"


def test_check_raises_only_once_the_token_is_set():
    token = threading.Event()
    check(token)
    check(None)
    token.set()
    with pytest.raises(Cancelled, match="label check cancelled"):
        check(token, "label check cancelled")


def test_every_long_call_names_its_stop_token_stop():
    """One keyword for the stop token: ``stop`` (it was ``stop_event`` on the training calls)."""
    offenders = []
    for path in sorted(CORE.parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs]
                offenders += [f"{path.name}:{node.lineno} {node.name}" for n in names if n == "stop_event"]
    assert not offenders, f"name the stop token `stop` (core.cancel.StopToken): {offenders}"
