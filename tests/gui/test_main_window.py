"""The real window, offscreen, driven through the whole workflow (pytest-qt)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from tlstudio.core.project import Project
from tlstudio.gui import window_closing
from tlstudio.gui.layer_tree import LayerTreeModel
from tlstudio.gui.main_window import MainWindow
from tlstudio.gui.train_panel import MESSAGE_HEIGHT

pytestmark = pytest.mark.slow
LONG = 120_000


def prepare(window, qtbot, tmp_path, data, backbone_file):
    window.set_project(Project(path=tmp_path / "p.tlstudio.json"))
    window.data.load(str(data))
    qtbot.waitUntil(lambda: window.data.report is not None, timeout=LONG)
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)
    window.backbone.choose(str(backbone_file))
    qtbot.waitUntil(lambda: window.layers.model.tree is not None, timeout=LONG)


def test_workflow_freeze_train_stop_export(window, qtbot, tmp_path, colour_data, tiny_backbone_file):
    import tensorflow as tf

    prepare(window, qtbot, tmp_path, colour_data, tiny_backbone_file)
    assert gc.isenabled() and gc.get_freeze_count() > 0  # TensorFlow's objects are out of the GC's walks
    assert window.data.classes.rowCount() == 3
    model = window.layers.model
    assert window.layers.plan().preset == "all"
    last_block = model.index(len(model.tree.blocks) - 1, 0)
    model.setData(last_block, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    plan = window.layers.plan()
    assert plan.preset == "custom"
    trainable, _ = model.trainable_params()
    assert trainable == sum(x.params for x in model.tree.blocks[-1].layers if not x.is_batchnorm)
    assert "trainable" in window.layers.totals.text()

    train = window.train
    train.form.epochs.setValue(2)
    train.form.fine_tune.setChecked(False)
    train.form.batch_size.setValue(8)
    train.form.learning_rate.setValue(0.01)
    window.start_training()
    qtbot.waitUntil(lambda: not train.is_running(), timeout=LONG)
    assert [e["epoch"] for e in train.curves.epochs] == [1, 2]
    assert len(train.curves.batches) >= 2 and train.curves.phases
    qtbot.waitUntil(lambda: train.curves.redraws > 0, timeout=5000)
    assert "Device: CPU" in train.device.text()
    project = Project.load(tmp_path / "p.tlstudio.json")
    assert project.runs[-1]["status"] == "completed"
    assert project.settings.freeze.preset == "custom"
    assert window.evaluate.runs.rowCount() == 1  # the Evaluate panel shows the new run and its metrics
    assert (
        window.evaluate.confusion.rowCount() == 3 and "Test accuracy" in window.evaluate.summary.toPlainText()
    )

    # stop mid-run: the best weights so far are kept and exported
    train.form.epochs.setValue(200)
    window.start_training()
    qtbot.waitUntil(lambda: len(train.curves.epochs) >= 1, timeout=LONG)
    train.request_stop()
    qtbot.waitUntil(lambda: not train.is_running(), timeout=LONG)
    assert len(train.curves.epochs) < 200
    stopped = Project.load(tmp_path / "p.tlstudio.json").runs[-1]
    assert stopped["status"] == "stopped"

    window.export.export_to(str(tmp_path / "exported"))
    qtbot.waitUntil(lambda: not window.export.task.is_running(), timeout=LONG)
    qtbot.waitUntil(lambda: "verified" in window.export.result.toPlainText(), timeout=5000)
    loaded = tf.saved_model.load(str(tmp_path / "exported" / "saved_model"))
    pixels = np.full((1, 32, 32, 3), 200, np.uint8)
    assert loaded.serve(pixels).shape == (1, 3)


def test_layer_tree_model_passes_qt_model_tester(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, qtmodeltester
):
    prepare(window, qtbot, tmp_path, colour_data, tiny_backbone_file)
    qtmodeltester.check(window.layers.model)
    fresh = LayerTreeModel()
    qtmodeltester.check(fresh)  # empty


def test_presets_and_batchnorm_in_the_tree(window, qtbot, tmp_path, colour_data, tiny_backbone_file):
    prepare(window, qtbot, tmp_path, colour_data, tiny_backbone_file)
    layers = window.layers
    layers.all_trainable.click()
    assert layers.plan().preset == "none"
    fine_tune = window.train.form.fine_tune  # a plan of the user's own trains in one phase: the panel says so
    assert not fine_tune.isEnabled() and "one phase" in fine_tune.text()
    assert window.train.form.epochs_label.text() == "Epochs"  # not "Head epochs": there is no head stage
    bn = [x.name for x in layers.model.tree.layers if x.is_batchnorm]
    assert bn and all(name in layers.model.frozen for name in bn)  # BatchNorm stays frozen
    layers.batchnorm.setChecked(True)
    layers.all_trainable.click()
    assert not layers.model.frozen and layers.plan().train_batchnorm
    layers.all_frozen.click()
    assert layers.plan().preset == "all"
    assert fine_tune.isEnabled() and fine_tune.text() == "Then fine-tune top blocks"
    assert window.train.form.epochs_label.text() == "Head epochs"
    layers.top_blocks.setValue(1)
    layers.top_button.click()
    trainable, frozen = layers.model.trainable_params()
    assert trainable == layers.model.tree.blocks[-1].params and frozen > 0


def start_a_long_run(window, qtbot, tmp_path, data, backbone_file):
    """A 500-epoch run on small batches, once its first batch has ended."""
    prepare(window, qtbot, tmp_path, data, backbone_file)
    window.train.form.epochs.setValue(500)
    window.train.form.batch_size.setValue(4)
    window.start_training()
    qtbot.waitUntil(lambda: len(window.train.curves.batches) >= 1, timeout=LONG)


def test_closing_during_training_asks_stops_and_waits(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, monkeypatch
):
    start_a_long_run(window, qtbot, tmp_path, colour_data, tiny_backbone_file)
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Yes
    )
    monkeypatch.setattr(window_closing, "QUIT_WAIT_MS", 120_000)  # a slow CI machine: the waiting path
    window.close()
    assert asked and not window.train.is_running()
    assert Project.load(tmp_path / "p.tlstudio.json").runs[-1]["status"] == "stopped"


def test_quitting_during_a_long_step_takes_seconds_and_leaves_the_run_resumable(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file, monkeypatch
):
    import time

    start_a_long_run(window, qtbot, tmp_path, colour_data, tiny_backbone_file)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    real_wait = window.train.wait
    monkeypatch.setattr(window.train, "wait", lambda ms: False)  # as if a batch ran for minutes
    exited = []
    window.hard_exit = exited.append
    started = time.monotonic()
    window.close()
    assert exited == [0] and time.monotonic() - started < 3
    run = Project.load(tmp_path / "p.tlstudio.json").runs[-1]
    assert run["status"] == "interrupted" and run["run_dir"] == str(window.train.run_dir)
    assert real_wait(120_000)  # (in the test the process goes on: let the stopped thread end)
    qtbot.waitUntil(lambda: not window.train.is_running(), timeout=LONG)


def test_start_page_recent_projects_and_geometry(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    project = Project(path=tmp_path / "a.tlstudio.json")
    project.save()
    first = MainWindow(settings)
    qtbot.addWidget(first)
    first.open_project(str(project.path))
    first.resize(640, 480)
    first.close()
    second = MainWindow(settings)
    qtbot.addWidget(second)
    assert second.recent_projects() == [str(project.path)]
    assert second.start_page.recent.item(0).text() == str(project.path)
    assert (second.size().width(), second.size().height()) == (640, 480)
    second.close()


def test_training_without_data_explains_what_is_missing(window, monkeypatch):
    said = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: said.append(a[2]))
    window.start_training()
    assert said and "data folder" in said[0] and "backbone" in said[0]


def test_the_step_list_ticks_what_is_done_and_start_waits_for_the_rest(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file
):
    window.set_project(Project(path=tmp_path / "p.tlstudio.json"))
    texts = [window.nav.item(row).text() for row in range(window.nav.count())]
    assert texts == ["Start", "Data", "Backbone", "Layers", "Train", "Evaluate", "Try it", "Export"]
    assert not window.train.start.isEnabled()
    assert "data folder" in window.train.readiness.text() and "backbone" in window.train.readiness.text()
    window.data.load(str(colour_data))
    qtbot.waitUntil(lambda: window.nav.item(1).text() == "Data  ✓", timeout=LONG)
    assert not window.train.start.isEnabled() and "data folder" not in window.train.readiness.text()
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)
    window.backbone.choose(str(tiny_backbone_file))
    qtbot.waitUntil(lambda: window.nav.item(3).text() == "Layers  ✓", timeout=LONG)
    assert window.nav.item(2).text() == "Backbone  ✓" and window.nav.item(4).text() == "Train"
    assert window.train.start.isEnabled() and window.train.readiness.text() == ""
    assert all(not window.nav.item(row).icon().isNull() for row in range(window.nav.count()))


def test_head_is_the_trees_last_node_and_editable_there(
    window, qtbot, tmp_path, colour_data, tiny_backbone_file
):
    prepare(window, qtbot, tmp_path, colour_data, tiny_backbone_file)
    model = window.layers.model
    head = model.index(model.rowCount() - 1, 0)
    assert model.data(head) == "head (new)" and model.rowCount(head) == 4
    # this backbone pools itself (its output is a vector): the box says so, and max pooling is off
    assert "the backbone's pooled output →" in window.layers.head_box.title()
    assert not window.layers.pooling.isEnabled()
    dropout_value = model.index(1, 2, head)
    assert model.data(dropout_value) == "0.2"
    assert model.setData(dropout_value, "0.5", Qt.ItemDataRole.EditRole)
    assert window.layers.dropout.value() == 0.5 and window.layers.head().dropout == 0.5
    dense_value = model.index(2, 2, head)
    assert model.setData(dense_value, "64", Qt.ItemDataRole.EditRole)
    assert window.layers.head().dense_units == (64,)
    assert not model.setData(dropout_value, "1.5", Qt.ItemDataRole.EditRole)  # refused
    window.layers.dropout.setValue(0.3)
    assert model.data(dropout_value) == "0.3"
    assert window.current_settings().head.dense_units == (64,)


def test_a_failing_run_says_what_to_do_in_the_window(window, qtbot, tmp_path, colour_data, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w_no_top.h5: no network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    window.set_project(Project(path=tmp_path / "p.tlstudio.json"))
    window.data.load(str(colour_data))
    qtbot.waitUntil(lambda: window.data.report is not None, timeout=LONG)
    qtbot.waitUntil(lambda: window.backbone.ready, timeout=LONG)
    window.backbone.choose("MobileNetV3Small", weights="imagenet", image_size=32)
    window.start_training()
    qtbot.waitUntil(lambda: not window.train.is_running(), timeout=LONG)
    text = window.train.message.text()
    assert "Run failed" in text and "What to do" in text and "tlstudio weights MobileNetV3Small" in text
    assert window.error_box.isVisible() and not window.error_box.isModal()
    assert "No run folder was made" in window.error_box.text() and "checkpoint" not in window.error_box.text()
    assert Project.load(tmp_path / "p.tlstudio.json").runs == []  # refused before it began: no ghost run


def test_training_shortcuts_fire_once_and_stop_says_nothing_when_idle(window, qtbot, monkeypatch):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QAction
    from PySide6.QtTest import QTest

    calls = []
    monkeypatch.setattr(window, "start_training", lambda *a, **k: calls.append("start"))
    window.nav.setCurrentRow(4)  # the Train panel
    keys = [a.shortcut().toString() for a in window.findChildren(QAction) if a.shortcut().toString()]
    assert keys.count("Ctrl+Return") == 1 and keys.count("Ctrl+.") == 1  # one action per key
    assert not window.train.start.shortcut().toString() and not window.train.stop.shortcut().toString()
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    QCoreApplication.processEvents()
    assert calls == ["start"]
    window.train.request_stop()  # nothing running: no "Stopping…" left on screen
    assert "Stopping" not in window.train.phase.text()


def test_a_task_dropped_while_running_is_kept_until_it_ends(qtbot):
    import threading

    from tlstudio.gui.worker import _RETIRED, Task

    release = threading.Event()
    results = []
    task = Task(lambda: release.wait(10) and "late")
    task.done.connect(results.append)
    task.start()
    task.retire()  # the owner moves on (another project, another backbone)
    del task
    gc.collect()
    assert len(_RETIRED) == 1  # still alive: destroying a running QThread aborts the app
    release.set()
    qtbot.waitUntil(lambda: not _RETIRED, timeout=10_000)
    assert results == []  # what it finished with no longer reaches the old owner


def test_a_task_that_ends_while_it_is_retired_is_not_kept(qtbot, monkeypatch):
    """The thread may end between retire's check and its connection to ``finished``."""
    from tlstudio.gui.worker import _RETIRED, Task

    task = Task(lambda: "quick")
    task.start()
    task.wait()
    monkeypatch.setattr(task, "is_running", lambda: True)  # as seen a moment before it ended
    task.retire()
    assert task not in _RETIRED


def test_the_window_fits_a_1366_pixel_laptop_at_every_panel(window, qtbot):
    from PySide6.QtCore import QCoreApplication

    for row in range(window.nav.count()):
        window.nav.setCurrentRow(row)
        QCoreApplication.processEvents()
        assert window.minimumSizeHint().width() <= 1280, (row, window.minimumSizeHint().width())
    window.train.message.setText("a very long error message " * 40)  # long texts wrap, never widen
    window.train.phase.setText("Phase 'fine-tune': " + "x" * 400)
    QCoreApplication.processEvents()
    assert window.minimumSizeHint().width() <= 1280
    window.resize(1280, 720)
    QCoreApplication.processEvents()
    assert window.width() <= 1280
    window.go_to("Train")  # a failed run's long error, an unbreakable path in it, on a 1366×768 screen
    window.resize(1366, 740)
    path = "/home/someone/" + "a_long_folder_name_without_spaces_" * 6 + "weights_no_top.h5"
    window.train.message.setText("<b>Run failed:</b> " + "cannot download the weights " * 12 + path)
    QCoreApplication.processEvents()
    form = window.train.form
    assert form.height() >= form.sizeHint().height()  # the settings keep readable rows
    assert window.train.message_area.height() <= MESSAGE_HEIGHT  # the text scrolls in its own box
    assert window.width() <= 1366 and window.train.message_area.isVisible()


def test_the_sample_project_works_offline_with_its_bundled_backbone(window, qtbot):
    from pathlib import Path

    window.open_sample()
    qtbot.waitUntil(lambda: window.project.settings.backbone.endswith("demo_backbone.keras"), timeout=LONG)
    qtbot.waitUntil(lambda: Path(window.project.settings.backbone).is_file(), timeout=LONG)
    qtbot.waitUntil(lambda: window.data.report is not None, timeout=LONG)
    s = window.project.settings
    assert s.freeze.preset == "none" and not s.augmentation.flip and s.weights == "imagenet"
    assert window.data.report.usable and len(window.data.report.classes) == 10
    # the user's own copy of the digits, beside the sample project: relabelling never changes the install
    from tlstudio.package_data import sample_dataset

    data = Path(window.project.data_dir)
    assert data.parent.parent == Path(window.project.path).parent and data != sample_dataset()
    assert sum(1 for _ in data.glob("*/*.png")) == 400
    # a sample project whose data folder went (an older install's copy): the copy is used again
    window.project.data_dir = str(data.parent / "gone")
    window.save_project()
    window.open_sample()
    qtbot.waitUntil(lambda: window.project.data_dir == str(data), timeout=LONG)


def test_the_data_panel_scan_can_be_cancelled(window, qtbot, tmp_path):
    from factory import make_colour_dataset

    root = make_colour_dataset(tmp_path / "many", per_class=200, size=8)
    panel = window.data
    panel.load(str(root))
    assert panel.cancel.isEnabled()
    panel.cancel_scan()
    qtbot.waitUntil(lambda: not panel.task.is_running(), timeout=LONG)
    qtbot.waitUntil(lambda: not panel.cancel.isEnabled(), timeout=5000)
    assert "cancelled" in panel.folder_label.text() and panel.report is None


def test_a_first_start_fits_the_screen_height(window):
    """No saved geometry: 1280×800, or the screen's height where it is smaller (1366×768 laptops)."""
    assert window.height() <= window.screen().availableGeometry().height()


def test_the_train_panel_offers_the_devices_and_shows_nvml_readings(window, qtbot, monkeypatch):
    from factory import FakeNvml

    from tlstudio.core.training import gpu_monitor

    form = window.train.form
    form.set_devices([(0, "GPU 0: NVIDIA L4 (16 GiB, compute 8.9)")])
    assert [form.device.itemData(i) for i in range(form.device.count())] == ["auto", "cpu", "gpu:0"]
    form.device.setCurrentIndex(2)
    form.mixed.setCurrentIndex(form.mixed.findData("on"))
    form.batch_auto.setChecked(False)
    s = window.current_settings()
    assert (s.device, s.mixed_precision, s.auto_batch_size) == ("gpu:0", "on", False)
    form.set_devices([])  # another machine: the chosen GPU is kept and marked
    assert form.device.currentData() == "gpu:0" and "not on this machine" in form.device.currentText()

    monkeypatch.setattr(gpu_monitor, "_nvml", lambda: FakeNvml())
    window.train._start_sampler()
    qtbot.waitUntil(lambda: "87% busy" in window.train.gpu_use.text(), timeout=5000)
    window.train._stop_sampler()


def test_the_data_panel_lists_look_alikes_and_poor_images(window, qtbot, tmp_path):
    from factory import photo
    from PIL import Image

    root = tmp_path / "data"
    for seed in range(6):
        (root / ("cats" if seed < 3 else "dogs")).mkdir(parents=True, exist_ok=True)
        photo(seed).save(root / ("cats" if seed < 3 else "dogs") / f"{seed}.png")
    photo(1).resize((90, 90)).save(root / "dogs" / "copy_of_1.png")
    Image.new("RGB", (64, 64), (2, 2, 3)).save(root / "cats" / "night.png")
    panel = window.data
    panel.load(str(root))
    qtbot.waitUntil(lambda: panel.report is not None, timeout=LONG)
    view = panel.quality
    assert view.rowCount() == 2
    assert view.item(0, 0).text() == "cats/1.png\ndogs/copy_of_1.png"
    assert "label conflict" in view.item(0, 2).text()
    assert (view.item(1, 0).text(), view.item(1, 2).text()) == ("cats/night.png", "very dark")
    assert panel.tabs.tabText(2) == "Look-alikes && quality (2)"


def test_kerashub_presets_are_listed_and_a_preset_folder_shows_its_transformer_blocks(
    window, qtbot, tmp_path, colour_data
):
    keras_hub = pytest.importorskip("keras_hub")

    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    backbone.save_to_preset(str(tmp_path / "vit_preset"))
    window.set_project(Project(path=tmp_path / "p.tlstudio.json"))
    panel = window.backbone
    qtbot.waitUntil(lambda: panel.ready, timeout=LONG)
    panel.choose("kerashub:dinov2_small")  # maybe before the presets are listed: chosen once they are
    qtbot.waitUntil(lambda: "kerashub:dinov2_small" in panel.specs, timeout=LONG)  # its own worker
    qtbot.waitUntil(
        lambda: panel.spec is not None and panel.spec.name == "kerashub:dinov2_small", timeout=LONG
    )
    assert panel.weights_box.isVisibleTo(panel) and panel.weights_box.preset == "kerashub:dinov2_small"
    panel.search.setText("dinov2_small")
    assert panel.proxy.rowCount() >= 1
    panel.choose("kerashub:dinov2_small")
    assert panel.weights.itemText(0).startswith("The preset's pretrained weights")
    panel.choose("kerashub:vit_base_patch16_384_imagenet")
    assert panel.size.value() == 384 and not panel.size.isEnabled()  # a ViT's size is fixed
    panel.choose(str(tmp_path / "vit_preset"))
    assert panel.spec.kind == "kerashub" and "KerasHub preset" in panel.summary.text()
    qtbot.waitUntil(
        lambda: (
            window.layers.model.tree is not None
            and [b.name for b in window.layers.model.tree.blocks]
            == ["stem", "transformer_block_1", "transformer_block_2"]
        ),
        timeout=LONG,
    )
    assert panel.apply_to(window.project.settings).backbone == str(tmp_path / "vit_preset")
    assert window.layers.model.head_values()[0][:2] == ("pooling", "class token")  # as the model is built
    assert "the class token →" in window.layers.head_box.title()  # the head box says the same,
    assert not window.layers.pooling.isEnabled()  # and offers no max pooling where nothing pools


def test_a_typed_hub_handle_is_looked_up_off_the_gui_thread(window, qtbot, monkeypatch):
    """A kaggle:// or hf:// handle fetches its config files: a slow network never freezes the window."""
    import threading
    import time

    from tlstudio.gui import backbone_panel

    panel = window.backbone
    qtbot.waitUntil(lambda: panel.ready, timeout=LONG)
    gui_thread = threading.get_ident()
    looked_up_on: list[int] = []
    found = next(s for s in panel.specs.values() if s.kind == "keras")

    def slow_resolve(handle):
        looked_up_on.append(threading.get_ident())
        time.sleep(1.0)
        if handle.endswith("missing"):
            raise backbone_panel.BackboneError("no such preset: kaggle://keras/missing")
        return found

    monkeypatch.setattr(backbone_panel, "resolve_backbone", slow_resolve)
    started = time.perf_counter()
    panel.choose("kaggle://keras/vit/keras/vit_base")
    assert time.perf_counter() - started < 0.5 and "Looking up kaggle://" in panel.summary.text()
    qtbot.waitUntil(lambda: panel.spec is found, timeout=LONG)
    assert looked_up_on and looked_up_on[0] != gui_thread
    panel.choose("kaggle://keras/missing")
    qtbot.waitUntil(lambda: "no such preset" in panel.summary.text(), timeout=LONG)
    assert "BackboneError" not in panel.summary.text()


def test_the_backbone_list_sorts_numbers_as_numbers(window, qtbot):
    panel = window.backbone
    qtbot.waitUntil(lambda: panel.ready, timeout=LONG)
    names = [panel.proxy.index(r, 0).data() for r in range(panel.proxy.rowCount())]
    resnets = [n for n in names if n.startswith("ResNet") and not n.startswith("ResNetRS")]
    assert resnets[:3] == ["ResNet50", "ResNet50V2", "ResNet101"], resnets
    panel.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)  # parameters: by count, not by text
    counts = [int(panel.proxy.index(r, 2).data().replace(",", "")) for r in range(5)]
    assert counts == sorted(counts, reverse=True) and counts[0] > 100_000_000
