"""Backbone kinds declare their capabilities; code outside the registry asks them, never the kind."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import get_args

import pytest

import tlstudio
from tlstudio.core.backbone.kinds import CAPABILITIES, BackboneKind, KindCapabilities
from tlstudio.core.backbone.registry import BackboneError, BackboneSpec

PACKAGE = Path(tlstudio.__file__).parent
REGISTRY = {PACKAGE / "core" / "backbone" / "registry.py", PACKAGE / "core" / "backbone" / "kinds.py"}
KINDS = set(get_args(BackboneKind))
FIELDS = [f.name for f in dataclasses.fields(KindCapabilities)]


def _is_kind(node: ast.AST) -> bool:
    """``x.kind`` or a name ``kind`` / ``*_kind``."""
    if isinstance(node, ast.Attribute):
        return node.attr == "kind"
    return isinstance(node, ast.Name) and (node.id == "kind" or node.id.endswith("_kind"))


def _names_a_kind(node: ast.AST) -> bool:
    """A backbone kind's name, alone or in a tuple, list or set."""
    return any(isinstance(n, ast.Constant) and n.value in KINDS for n in ast.walk(node))


def kind_branches(source: str) -> list[int]:
    """Lines that compare a kind with a backbone kind's name, or read ``.kind`` (other than numpy's
    ``dtype.kind``): a dispatch on the kind, which only the registry may do."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(map(_is_kind, operands)) and any(_names_a_kind(o) for o in operands if not _is_kind(o)):
                lines.append(node.lineno)
        if isinstance(node, ast.Attribute) and node.attr == "kind":
            numpy_dtype = isinstance(node.value, ast.Attribute) and node.value.attr == "dtype"
            if not numpy_dtype:
                lines.append(node.lineno)
    return sorted(set(lines))


@pytest.mark.parametrize(
    "code",
    [
        'if spec.kind == "keras": pass',
        'ok = spec.kind != "file"',
        'ok = self.spec.kind in ("keras", "kerashub")',
        'ok = "savedmodel" == kind',
        'text = {"keras": "a"}.get(spec.kind, "b")',
        "kinds = [s.kind for s in specs]",
    ],
)
def test_the_check_finds_a_branch_on_the_kind(code):
    assert kind_branches(code) == [1]


@pytest.mark.parametrize(
    "code",
    [
        'x = a if a.dtype.kind == "f" else b',  # numpy's dtype kind
        'if kind == "offset": pass',  # not a backbone kind
        'ok = spec.brings_own_size and weights == "file"',
        'facts = {"kind": "file"}',
    ],
)
def test_the_check_leaves_other_kinds_alone(code):
    assert kind_branches(code) == []


def test_no_code_outside_the_registry_branches_on_a_backbone_kind():
    found = []
    for source in sorted(PACKAGE.rglob("*.py")):
        if source not in REGISTRY:
            lines = kind_branches(source.read_text())
            found += [f"{source.relative_to(PACKAGE.parent)}:{line}" for line in lines]
    assert not found, "ask a capability (kinds.KindCapabilities), not the kind: " + ", ".join(found)


def test_every_kind_declares_every_capability():
    assert set(CAPABILITIES) == KINDS
    for field in dataclasses.fields(KindCapabilities):  # no default: a kind cannot leave one out
        assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    for kind, capabilities in CAPABILITIES.items():
        for name in FIELDS:
            value = getattr(capabilities, name)
            wanted = str if name == "origin" else bool
            assert isinstance(value, wanted) and value != "", f"{kind}.{name} = {value!r}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_spec_answers_each_capability_of_its_kind(kind):
    spec = BackboneSpec("B", kind, "family", 224, 32, None, "none", source="/x/b.keras")
    assert spec.capabilities is CAPABILITIES[kind]
    for name in FIELDS:
        assert isinstance(getattr(BackboneSpec, name), property), f"BackboneSpec.{name} is missing"
        wanted = getattr(CAPABILITIES[kind], name)
        assert getattr(spec, name) == (wanted.format(source=spec.source) if name == "origin" else wanted)


def test_a_spec_of_an_unknown_kind_is_refused():
    with pytest.raises(BackboneError, match="unknown backbone kind torch"):
        BackboneSpec("B", "torch", "family", 224, 32, None, "none")  # type: ignore[arg-type]
