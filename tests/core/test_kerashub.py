"""KerasHub presets as backbones: tiny presets written by KerasHub's own ``save_to_preset``, with
random weights, then recognised, shown as a tree of transformer blocks, frozen per block, trained,
exported to every format and reloaded in each format's own runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")  # KerasHub needs Python 3.11+: tlstudio[kerashub]

import keras  # noqa: E402

from tlstudio.cli import main  # noqa: E402
from tlstudio.core.backbone import kerashub, kerashub_fetch  # noqa: E402
from tlstudio.core.backbone.classifier import build_classifier  # noqa: E402
from tlstudio.core.backbone.freezing import apply_freeze_plan, variable_multipliers  # noqa: E402
from tlstudio.core.backbone.layer_tree import build_layer_tree  # noqa: E402
from tlstudio.core.backbone.registry import BackboneError, build_backbone, resolve_backbone  # noqa: E402
from tlstudio.core.freeze_plan import FreezePlan  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vit_preset(tmp_path_factory):
    """A ViT image-classifier preset (backbone, head, image converter at 32 px, scale 1/127.5 - 1)."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=3, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    classifier = keras_hub.models.ViTImageClassifier(
        backbone=backbone, num_classes=5, preprocessor=preprocessor
    )
    folder = tmp_path_factory.mktemp("kerashub") / "tiny_vit"
    classifier.save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def dinov2_preset(tmp_path_factory):
    """A DINOv2 backbone-only preset (no image converter: ImageNet mean/std is assumed)."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.DINOV2Backbone(
        patch_size=8,
        num_layers=2,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(32, 32, 3),
        position_embedding_shape=(32, 32, 3),
    )
    folder = tmp_path_factory.mktemp("kerashub") / "tiny_dinov2"
    backbone.save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def resnet_preset(tmp_path_factory):
    """A convolutional family: a small KerasHub ResNet with a torch-style image converter."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )
    std = np.array([0.229, 0.224, 0.225])
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=list(1 / (255 * std)), offset=list(-np.array([0.485, 0.456, 0.406]) / std)
    )
    folder = tmp_path_factory.mktemp("kerashub") / "tiny_resnet"
    backbone.save_to_preset(str(folder))
    converter.save_to_preset(str(folder))
    return folder


def test_a_preset_folder_is_a_kerashub_backbone_read_from_its_json(vit_preset, dinov2_preset, tmp_path):
    spec = resolve_backbone(str(vit_preset))
    assert (spec.kind, spec.family, spec.source) == ("kerashub", "KerasHub ViT", str(vit_preset))
    assert (spec.preprocessing, spec.class_token, spec.default_size, spec.fixed_size) == ("tf", True, 32, 32)
    assert spec.params == json.loads((vit_preset / "metadata.json").read_text())["parameter_count"]
    dino = resolve_backbone(str(dinov2_preset))
    assert (dino.family, dino.preprocessing, dino.class_token, dino.fixed_size) == (
        "KerasHub DINOv2",
        "torch",
        True,
        None,
    )
    (tmp_path / "config.json").write_text("{}")
    assert not kerashub.is_kerashub_source(str(tmp_path))  # no KerasHub metadata: not a preset


def test_converter_arithmetic_becomes_a_preprocessing_mode_or_is_refused():
    std, mean = np.array([0.229, 0.224, 0.225]), np.array([0.485, 0.456, 0.406])
    assert kerashub.converter_mode({"scale": list(1 / (255 * std)), "offset": list(-mean / std)}) == "torch"
    assert kerashub.converter_mode({"scale": 1 / 255, "offset": None}) == "unit"
    assert kerashub.converter_mode({"scale": None, "offset": None}) == "none"
    with pytest.raises(BackboneError, match="--preprocessing"):
        kerashub.converter_mode({"scale": 2.0, "offset": 3.0})


def test_transformer_layers_are_blocks_that_freeze_plans_and_rates_reach(vit_preset):
    spec = resolve_backbone(str(vit_preset))
    backbone = build_backbone(spec, image_size=32)
    tree = build_layer_tree(backbone)
    assert [b.name for b in tree.blocks] == [
        "stem",
        "transformer_block_1",
        "transformer_block_2",
        "transformer_block_3",
    ]
    assert tree.total_params == backbone.count_params()
    model = build_classifier(backbone, 3, 32, preprocessing=spec.preprocessing, class_token=True)
    assert model.get_layer("head_pool").output.shape == (None, 16)  # the class token
    summary = apply_freeze_plan(model, FreezePlan("top", 1))
    last = tree.block("transformer_block_3").params
    assert summary.backbone_trainable == last
    trainable = {w.path for w in backbone.trainable_weights}
    assert trainable and all("transformer_block_3" in p or p.startswith("vit_encoder/ln") for p in trainable)
    apply_freeze_plan(model, FreezePlan("top", 2, lr_decay=0.5))
    rates = variable_multipliers(model, FreezePlan("top", 2, lr_decay=0.5))
    by_path = {w.path: rates[id(w)] for w in backbone.trainable_weights}
    assert {m for p, m in by_path.items() if "transformer_block_3" in p} == {0.5}
    assert {m for p, m in by_path.items() if "transformer_block_2" in p} == {0.25}


def test_dinov2_and_a_convolutional_preset_build_with_their_blocks(dinov2_preset, resnet_preset):
    dino = resolve_backbone(str(dinov2_preset))
    tree = build_layer_tree(build_backbone(dino, image_size=32))
    assert [b.name for b in tree.blocks][1:] == ["layers_0", "layers_1"]
    resnet = resolve_backbone(str(resnet_preset))
    assert (resnet.family, resnet.preprocessing, resnet.class_token) == ("KerasHub ResNet", "torch", False)
    net = build_backbone(resnet, image_size=40)  # a convolutional preset takes any size
    assert net.output.shape[1:3] == (5, 5)  # 40 px: stride 4 in the stem, then 2
    model = build_classifier(net, 3, 40, preprocessing=resnet.preprocessing)
    assert model.get_layer("head_pool").output.shape == (None, 64)
    blocks = [b.name for b in build_layer_tree(net).blocks]
    assert blocks[-2:] == ["stack0_block0", "stack1_block0"]


def test_weights_none_is_the_same_architecture_freshly_initialised(vit_preset):
    spec = resolve_backbone(str(vit_preset))
    pretrained, fresh = build_backbone(spec), build_backbone(spec, weights="none")
    assert [w.shape for w in pretrained.weights] == [w.shape for w in fresh.weights]
    kernel = "vit_encoder/transformer_block_1/mha/query/kernel"
    a, b = ({w.path: w.numpy() for w in m.weights}[kernel] for m in (pretrained, fresh))
    assert not np.allclose(a, b)
    with pytest.raises(BackboneError, match="takes only 32 px"):
        build_backbone(spec, image_size=64)
    with pytest.raises(BackboneError, match="its own weights"):
        build_backbone(spec, weights="some.weights.h5")


def test_a_named_preset_offline_says_what_to_do_and_a_typo_gets_a_suggestion(monkeypatch):
    from keras_hub.src.utils import preset_utils

    def no_network(preset, path):
        raise ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(preset_utils, "get_file", no_network)
    with pytest.raises(BackboneError, match="Offline, a preset must be in KerasHub's cache") as err:
        resolve_backbone("kerashub:dinov2_small")
    assert "Failed to resolve" in str(err.value)
    with pytest.raises(BackboneError, match="Did you mean kerashub:dinov2_small"):
        resolve_backbone("kerashub:dinov2_smal")
    assert "kerashub:vit_base_patch16_224_imagenet" in {p["name"] for p in kerashub.list_presets()}


def test_a_kerashub_backbone_trains_exports_and_reloads_in_every_runtime(vit_preset, tmp_path, capsys):
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from factory import make_colour_dataset

    from tlstudio.core.backbone.kerashub import load_model_file
    from tlstudio.core.data.pipeline import load_for_model

    data = make_colour_dataset(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", str(data), "--backbone", str(vit_preset), "--out", str(run), "--batch-size", "8"]
    assert main([*args, "--fine-tune-epochs", "1", "--no-augment"]) == 0
    settings = json.loads((run / "settings.json").read_text())
    assert settings["backbone"] == str(vit_preset)
    history = json.loads((run / "history.json").read_text())
    assert len(history["epochs"]) >= 2
    capsys.readouterr()
    code = main(["export", str(run), "--format", "all", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert {"saved_model", "tflite", "tflite-int8", "onnx"} <= {row["name"] for row in rows}
    # TF.js (where Node is installed) has no kernel for the GELU's Erfc of a ViT: it fails closed and
    # says so, and only it; Core ML (macOS only) and TF.js without Node are skipped
    tfjs = [row for row in rows if row["name"] == "tfjs" and row["status"] == "failed"]
    assert all("Unknown op" in row["error"] for row in tfjs), tfjs
    assert code == (1 if tfjs else 0)
    made = [row for row in rows if row["status"] != "skipped" and row not in tfjs]
    assert made and all(row["verification"]["passed"] for row in made), rows

    images = np.stack([load_for_model(p, 32) for p in sorted(data.rglob("*.png"))[:9]]).astype(np.float32)
    expected = load_model_file(run / "model.keras").predict(images, verbose=0)
    served = tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"]
    got = next(iter(served(tf.constant(images)).values())).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    session = ort.InferenceSession(
        str(run / "export" / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["images"]  # no captured constant as an input
    np.testing.assert_allclose(session.run(None, {"images": images})[0], expected, atol=1e-4)
    interpreter = Interpreter(model_path=str(run / "export" / "tflite" / "model.tflite"))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], images)
    interpreter.invoke()
    tflite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(tflite, expected, atol=1e-4)


def test_a_named_preset_fetches_every_weights_shard_before_the_run_and_offline_claims_no_folder(
    monkeypatch, tmp_path, vit_preset
):
    from keras_hub.src.utils import preset_utils

    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.session import TrainingSession

    fetched = []
    sharded = tmp_path / "model.weights.json"
    sharded.write_text(json.dumps({"weight_map": {"a": "shard_1.h5", "b": ["shard_1.h5", "shard_2.h5"]}}))

    def cached(preset, path):  # a sharded preset: its config from the tiny folder, its index here
        fetched.append(path)
        if path == "model.weights.h5":
            raise FileNotFoundError(path)
        return str(sharded if path == "model.weights.json" else vit_preset / path)

    monkeypatch.setattr(preset_utils, "get_file", cached)
    kerashub_fetch.fetch_preset_weights("dinov2_small")
    assert fetched[-3:] == ["model.weights.json", "shard_1.h5", "shard_2.h5"]
    kerashub_fetch.fetch_preset_weights(str(vit_preset))  # a local folder: nothing to fetch
    assert len(fetched) == 4

    def offline(preset, path):
        if path == "model.weights.h5":
            raise ConnectionError("Failed to resolve 'api.kaggle.com'")
        return str(vit_preset / path)

    monkeypatch.setattr(preset_utils, "get_file", offline)
    run = tmp_path / "run"
    result = TrainingSession(
        TrainSettings(backbone="kerashub:vit_base_patch16_224_imagenet"), tmp_path, run
    ).run()
    assert result.status == "failed" and "Offline, a preset must be in KerasHub's cache" in result.error
    assert not run.exists()  # refused before the run folder was claimed


def test_a_preset_download_reports_progress_cancels_and_resumes_through_kagglehub(tmp_path):
    """kagglehub's own downloader (``clients.download_file``: HTTP, Range resume, its tqdm bar) run
    against a local server, inside ``download_progress``: the bar's updates reach the callback, a set
    stop cancels mid-file, and the next download resumes from the part left behind."""
    import threading

    import requests
    from kagglehub import clients
    from kagglehub.handle import parse_model_handle
    from served_file import serve_file

    payload = bytes(range(256)) * 4096 * 5  # 5 MiB: five of kagglehub's 1 MiB chunks
    out = tmp_path / "model.weights.h5"
    handle = parse_model_handle("keras/tiny/keras/tiny_vit/1")
    seen: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def progress(n, total):
        seen.append((n, total))
        if n >= len(payload) // 3:
            stop.set()

    with serve_file(payload, "model.weights.h5") as (url, ranges):
        with (
            kerashub_fetch.download_progress(progress, stop),
            pytest.raises(kerashub_fetch.PresetDownloadCancelled),
            requests.get(f"{url}/model.weights.h5", stream=True, timeout=10) as response,
        ):
            clients.download_file(response, str(out), handle)
        part = out.stat().st_size
        assert 0 < part < len(payload) and seen[-1][1] == len(payload)
        resumed: list[tuple[int, int | None]] = []
        with (
            kerashub_fetch.download_progress(lambda n, t: resumed.append((n, t)), threading.Event()),
            requests.get(f"{url}/model.weights.h5", stream=True, timeout=10) as response,
        ):
            clients.download_file(response, str(out), handle)
        assert ranges[-1] == f"bytes={part}-"  # resumed, not started again
    assert out.read_bytes() == payload
    assert resumed[0][0] == part and resumed[-1] == (len(payload), len(payload))
    assert clients.tqdm.__name__ == "tqdm"  # kagglehub's own bar is back


def test_whether_a_preset_is_on_this_machine(vit_preset, monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    assert kerashub_fetch.preset_weights_cached(str(vit_preset)) is True
    assert kerashub_fetch.preset_weights_cached("dinov2_small") is False
    assert kerashub_fetch.preset_weights_cached("kerashub:dinov2_small") is False  # as the list names it
    assert kerashub_fetch.preset_weights_cached("hf://someone/tiny") is None  # only the network knows


def test_swin_stages_keep_their_blocks_apart_and_pool_their_tokens(tmp_path):
    keras.utils.set_random_seed(0)
    folder = tmp_path / "tiny_swin"
    keras_hub.models.SwinTransformerBackbone(
        image_shape=(32, 32, 3), embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=4, patch_size=4
    ).save_to_preset(str(folder))
    spec = resolve_backbone(str(folder))
    backbone = build_backbone(spec, image_size=32)
    tree = build_layer_tree(backbone)
    names = [b.name for b in tree.blocks]
    assert len(names) == len(set(names)) and names[-2:] == ["stage_1/blocks_0", "stage_1/blocks_1"]
    model = build_classifier(backbone, 3, 32, preprocessing=spec.preprocessing, class_token=spec.class_token)
    assert type(model.get_layer("head_pool")).__name__ == "GlobalAveragePooling1D"  # not a Flatten
    summary = apply_freeze_plan(model, FreezePlan("top", 1))
    assert summary.backbone_trainable == tree.blocks[-1].params


def test_batchnorm_inside_a_kerashub_block_stays_frozen_unless_asked(tmp_path):
    keras.utils.set_random_seed(0)
    folder = tmp_path / "tiny_efficientnet"
    keras_hub.models.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 2],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "unfused"],
        stackwise_width_coefficients=[1.0, 1.0],
        stackwise_depth_coefficients=[1.0, 1.0],
        input_shape=(None, None, 3),
    ).save_to_preset(str(folder))
    spec = resolve_backbone(str(folder))
    backbone = build_backbone(spec, image_size=32)
    model = build_classifier(backbone, 3, 32, preprocessing=spec.preprocessing)
    assert any(layer.holds_batchnorm for layer in build_layer_tree(backbone).layers)

    def trainable_batchnorm():
        return [
            w.path
            for layer in backbone._flatten_layers(include_self=False, recursive=True)
            if type(layer).__name__ == "BatchNormalization"
            for w in layer.trainable_weights
        ]

    apply_freeze_plan(model, FreezePlan("none"))
    assert trainable_batchnorm() == [] and model.trainable_weights
    apply_freeze_plan(model, FreezePlan("none", train_batchnorm=True))
    assert trainable_batchnorm()


def test_a_preset_picked_from_the_list_is_built_by_its_kerashub_name(monkeypatch):
    from tlstudio.core.backbone.registry import list_kerashub_backbones

    listed = {s.name: s for s in list_kerashub_backbones()}
    spec = listed["kerashub:vit_base_patch16_224_imagenet"]
    assert (spec.fixed_size, spec.default_size, spec.family) == (224, 224, "KerasHub ViT")
    assert not any("HGNetV2" in s.family for s in listed.values())  # its backbone returns a dict
    asked = []
    monkeypatch.setattr(
        keras_hub.models.Backbone, "from_preset", classmethod(lambda cls, preset, **kw: asked.append(preset))
    )
    build_backbone(spec, weights="none", image_size=224)
    assert asked == ["vit_base_patch16_224_imagenet"]  # as KerasHub names it, without our prefix


def test_overlapping_preset_downloads_each_report_to_their_own_bar_and_leave_kagglehub_as_it_was():
    import threading

    from kagglehub import clients

    original = clients.tqdm
    inside, leave, seen = threading.Event(), threading.Event(), {"a": [], "b": []}

    def download(key):
        with kerashub_fetch.download_progress(lambda n, t: seen[key].append(n), threading.Event()):
            with clients.tqdm(total=10) as bar:
                bar.update(10 if key == "a" else 4)
            inside.set()
            leave.wait(5)

    first = threading.Thread(target=download, args=("a",))
    first.start()
    inside.wait(5)
    download_b = threading.Thread(target=download, args=("b",))
    download_b.start()
    leave.set()
    first.join(5)
    download_b.join(5)
    assert seen == {"a": [0, 10], "b": [0, 4]}
    assert clients.tqdm is original
