"""Acceptance: `tlstudio train` with a user's .keras backbone, scored through plain TensorFlow, is at
least as accurate as the Keras guide's hand-written frozen-backbone recipe on the same files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from factory import pretrain_shapes_backbone

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from transfer_vs_guide import compare

pytestmark = pytest.mark.slow


def test_tlstudio_matches_the_keras_guide_recipe(tmp_path):
    backbone, pretrain_accuracy = pretrain_shapes_backbone(
        tmp_path / "shapes_cnn.keras", per_class=200, epochs=6
    )
    assert pretrain_accuracy > 0.8  # a real pretrained backbone, not noise
    result = compare(tmp_path, per_class=30, guide_epochs=20, seed=1, backbone_file=backbone)
    assert result["tlstudio"] >= result["guide"] - 0.05, result
