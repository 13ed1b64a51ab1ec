"""Without KerasHub, a preset says how to get it: pip where pip is, and not in the bundle, which has none."""

from __future__ import annotations

import sys

import pytest

from tlstudio.core.backbone.kerashub import import_kerashub
from tlstudio.core.backbone.sources import BackboneError


def test_a_missing_kerashub_says_pip_or_that_the_bundle_has_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # an import of it fails, as when not installed
    with pytest.raises(BackboneError, match=r"not installed here: pip install 'tlstudio\[kerashub\]'"):
        import_kerashub()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(BackboneError, match="not in this TL Studio bundle: install TL Studio with pip"):
        import_kerashub()
