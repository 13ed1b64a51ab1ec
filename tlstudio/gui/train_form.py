"""The Train panel's settings form: every training knob with its reason, read from and written to
``TrainSettings`` (one widget per field; the defaults are the settings' own)."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from tlstudio.core.settings import (
    MIXED_PRECISION,
    OPTIMIZERS,
    PEFT_MODES,
    PROBE_FEATURES,
    TrainSettings,
    defaults,
)
from tlstudio.core.training.recipe import is_one_phase
from tlstudio.gui.lr_find_view import LrFindView

FINE_TUNE_TIP = (
    "Phase 2: unfreeze the top blocks at a 10× lower learning rate — the step that adapts pretrained "
    "features to your images"
)
LR_FIND_TIP = (
    "Sweep the fine-tune phase's learning rate on your training images and see the loss at each "
    "(as `tlstudio lr-find`); the suggestion is applied to Learning rate only when you ask"
)
LR_FIND_NOT_READY = "Not ready: the finder is not connected to a project yet"
MIXED_TIPS = {
    "auto": "auto: float16 compute on GPUs with tensor cores (compute capability 7.0 or more), "
    "float32 on a CPU and older GPUs",
    "on": "float16 compute with loss scaling; weights, output and the export stay float32",
    "off": "float32 everywhere",
}


class TrainForm(QGroupBox):
    """The training settings; ``show_settings`` / ``apply_to`` like every settings panel."""

    def __init__(self, parent=None):
        super().__init__("Settings", parent)

        def spin(lo, hi, value, tip):
            box = QSpinBox(minimum=lo, maximum=hi, value=value)
            box.setToolTip(tip)
            return box

        def check(text, tip, checked=False):
            box = QCheckBox(text, checked=checked)
            box.setToolTip(tip)
            return box

        def real(lo, hi, value, step, decimals, tip):
            box = QDoubleSpinBox(decimals=decimals)  # decimals first: a value set before is rounded
            box.setRange(lo, hi)
            box.setSingleStep(step)
            box.setValue(value)
            box.setToolTip(tip)
            return box

        d = defaults()  # every widget starts at the settings' own default

        self.epochs = spin(
            1,
            1000,
            d.epochs,
            "Phase 1: the new head learns on the frozen backbone. Early stopping "
            "ends it when validation loss stops improving",
        )
        self.fine_tune = check(
            "Then fine-tune top blocks",
            FINE_TUNE_TIP,
            checked=d.fine_tune_epochs != 0,
        )
        self.fine_tune_epochs = spin(
            0,
            1000,
            d.fine_tune_epochs or 0,
            "Phase 2 epochs (early stopping applies); auto: a budget sized by the number of training "
            "images (the recipe table in docs/training.md)",
        )
        self.fine_tune_epochs.setSpecialValueText("auto")
        self.fine_tune_blocks = spin(
            1, 100, d.fine_tune_blocks, "How many top blocks of the backbone to unfreeze in phase 2"
        )
        self.learning_rate = real(
            1e-6,
            1.0,
            d.learning_rate,
            1e-4,
            6,
            "Adam's rate for phase 1; phase 2 uses 10× lower so pretrained weights are nudged, not destroyed",
        )
        self.batch_size = spin(1, 4096, d.batch_size, "Images per step; lower it if memory runs out")
        self.patience = spin(
            1,
            100,
            d.early_stopping_patience,
            "Epochs without a better validation loss before stopping; the best weights are restored",
        )
        self.optimizer = QComboBox()
        self.optimizer.addItems(list(OPTIMIZERS))
        self.optimizer.setToolTip("Adam is the safe default for transfer learning")
        self.flip = check(
            "Horizontal flips",
            "Off for text, digits, maps: anything whose mirror image means something else",
            checked=d.augmentation.flip,
        )
        self.rotation = real(
            0.0, 0.5, d.augmentation.rotation, 0.01, 2, "Random rotation, as a fraction of a full turn"
        )
        self.zoom = real(0.0, 0.5, d.augmentation.zoom, 0.05, 2, "Random zoom in and out")
        self.peft = QComboBox()
        self.peft.addItems(list(PEFT_MODES))
        self.peft.setToolTip(
            "Fine-tune phase: whole top blocks (none), LoRA adapters on a transformer's attention and MLP "
            "projections (lora), or only the backbone's biases and norms (bitfit); the head always trains"
        )
        self.mixed = QComboBox()
        for value in MIXED_PRECISION:
            self.mixed.addItem(value, value)
            self.mixed.setItemData(self.mixed.count() - 1, MIXED_TIPS[value], Qt.ItemDataRole.ToolTipRole)
        self.mixed.setToolTip(MIXED_TIPS["auto"])
        self.batch_auto = check(
            "auto",
            "Halve the batch size and start again when memory runs out (a number of your own is kept: "
            "running out of memory then ends the run with advice)",
            checked=d.auto_batch_size,
        )
        batch_row = QHBoxLayout()
        batch_row.setContentsMargins(0, 0, 0, 0)
        batch_row.addWidget(self.batch_size, 1)
        batch_row.addWidget(self.batch_auto)
        batch = QWidget()
        batch.setLayout(batch_row)
        self.device = QComboBox()
        self.device.setToolTip(
            "Where to train (auto: the first GPU, else the CPU); `tlstudio devices` lists them"
        )
        self.set_devices([])
        form = QFormLayout()
        self.epochs_label = QLabel("Head epochs")
        form.addRow(self.epochs_label, self.epochs)
        form.addRow("", self.fine_tune)
        form.addRow("Fine-tune epochs", self.fine_tune_epochs)
        form.addRow("Blocks to unfreeze", self.fine_tune_blocks)
        form.addRow("Learning rate", self.learning_rate)
        # the learning-rate finder: a dialog the window connects (settings_source, report_source,
        # waiting_for); its suggestion reaches the Learning rate field only through "Use this rate"
        self.lr_find = LrFindView(self)
        self.lr_find.rate_chosen.connect(self.use_learning_rate)
        self.lr_find.connected.connect(self._lr_find_connected)
        self.find_lr = QPushButton("Find learning rate…")
        self.find_lr.clicked.connect(self.lr_find.open_finder)
        self._lr_find_connected(False)
        form.addRow("", self.find_lr)
        form.addRow("Batch size", batch)
        form.addRow("Early-stopping patience", self.patience)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Augmentation", self.flip)
        form.addRow("Rotation", self.rotation)
        form.addRow("Zoom", self.zoom)
        form.addRow("Fine-tune PEFT", self.peft)
        form.addRow("Device", self.device)
        form.addRow("Mixed precision", self.mixed)
        self.mirrored = check(
            "Use every GPU",
            "Data-parallel training over all local GPUs (MirroredStrategy); the batch is split between them",
        )
        form.addRow("", self.mirrored)
        self.calibrate = check(
            "Calibrate confidences",
            "Temperature scaling fitted on the validation split, baked into the export: the predicted "
            "class stays the same, the probabilities become honest (multi-label data: Platt scaling "
            "per label, before the thresholds are tuned)",
        )
        form.addRow("", self.calibrate)
        self.small_folder_train = check(
            "Small folder: use validation",
            "When validation would hold fewer than 2 images a class, those images train too (choices by "
            "cross-validation and by rule; the test split stays held out). Untick to hold them out anyway",
            checked=True,
        )
        form.addRow("", self.small_folder_train)
        self.feature_cache = check(
            "Cache backbone features",
            "With the backbone frozen and augmentation off, compute its features once and train the head on "
            "them: epochs after the first are many times faster",
            checked=True,
        )
        form.addRow("", self.feature_cache)
        self.probe_features = QComboBox()
        self.probe_features.addItems(list(PROBE_FEATURES))
        self.probe_features.setToolTip(
            "What the linear probe reads of a transformer: auto (= last), the last block's class token, "
            "or last4 (DINOv2: the last 4 blocks' class tokens and the mean patch token; KerasHub ViT, "
            "fine-tuning off)"
        )
        form.addRow("Probe features", self.probe_features)
        self.setLayout(form)

    def use_learning_rate(self, rate: float) -> None:
        """The finder's suggestion, applied on the user's request: the Learning rate field (the
        head's rate; the fine-tune phase the finder measured runs at a fixed fraction of it)."""
        self.learning_rate.setValue(rate)
        self.lr_find.applied(self.learning_rate.value())  # as the field holds it (rounded, in range)

    def _lr_find_connected(self, connected: bool) -> None:
        self.find_lr.setEnabled(connected)
        self.find_lr.setToolTip(LR_FIND_TIP if connected else LR_FIND_NOT_READY)

    def set_devices(self, gpus: list[tuple[int, str]]) -> None:
        """The device choices: auto, cpu and each GPU (index, words) once TensorFlow has listed them."""
        current = self.device.currentData() or "auto"
        self.device.clear()
        self.device.addItem("auto", "auto")  # (the first GPU, else the CPU: the tooltip says so)
        self.device.addItem("CPU", "cpu")
        for index, words in gpus:
            self.device.addItem(words, f"gpu:{index}")
        self._choose_device(current)

    def _choose_device(self, value: str) -> None:
        found = self.device.findData(value)
        if found < 0:  # a project's GPU this machine lacks: kept, and the run says so
            self.device.addItem(f"{value} (not on this machine)", value)
            found = self.device.count() - 1
        self.device.setCurrentIndex(found)

    def apply_to(self, settings: TrainSettings) -> TrainSettings:
        """Settings with this panel's values; what the panel does not show is kept as it was."""
        if self.mirrored.isChecked():
            strategy = "mirrored"
        else:  # a multi-worker project stays one
            strategy = "default" if settings.strategy == "mirrored" else settings.strategy
        return settings.but(
            epochs=self.epochs.value(),
            fine_tune_epochs=(self.fine_tune_epochs.value() or None) if self.fine_tune.isChecked() else 0,
            fine_tune_blocks=self.fine_tune_blocks.value(),
            learning_rate=self.learning_rate.value(),
            batch_size=self.batch_size.value(),
            auto_batch_size=self.batch_auto.isChecked(),
            early_stopping_patience=self.patience.value(),
            optimizer=self.optimizer.currentText(),
            augmentation=replace(
                settings.augmentation,
                flip=self.flip.isChecked(),
                rotation=self.rotation.value(),
                zoom=self.zoom.value(),
            ),
            mixed_precision=self.mixed.currentData(),
            device=self.device.currentData(),
            strategy=strategy,
            calibrate=self.calibrate.isChecked(),
            feature_cache=self.feature_cache.isChecked(),
            small_folder_val="train" if self.small_folder_train.isChecked() else "keep",
            peft=self.peft.currentText(),
            probe_features=self.probe_features.currentText(),
        )

    def show_settings(self, s: TrainSettings) -> None:
        """Fill the form from settings (a loaded project)."""
        self.epochs.setValue(s.epochs)
        self.fine_tune.setChecked(s.fine_tune_epochs != 0)
        self.fine_tune_epochs.setValue(s.fine_tune_epochs or 0)  # 0 shows "auto"
        self.fine_tune_blocks.setValue(s.fine_tune_blocks)
        self.learning_rate.setValue(s.learning_rate)
        self.batch_size.setValue(s.batch_size)
        self.batch_auto.setChecked(s.auto_batch_size)
        self.patience.setValue(s.early_stopping_patience)
        self.optimizer.setCurrentText(s.optimizer)
        self.flip.setChecked(s.augmentation.flip)
        self.rotation.setValue(s.augmentation.rotation)
        self.zoom.setValue(s.augmentation.zoom)
        self.mixed.setCurrentIndex(self.mixed.findData(s.mixed_precision))
        self._choose_device(s.device)
        self.mirrored.setChecked(s.strategy == "mirrored")
        self.calibrate.setChecked(s.calibrate)
        self.feature_cache.setChecked(s.feature_cache)
        self.small_folder_train.setChecked(s.small_folder_val == "train")
        self.peft.setCurrentText(s.peft)
        self.probe_features.setCurrentText(s.probe_features)

    def show_plan(self, plan) -> None:
        """The Layers panel's plan: one of the user's own trains in one phase, so the recipe's
        phase-2 settings do not apply (and say so) until the plan is feature extraction again."""
        one = is_one_phase(plan)
        for widget in (self.fine_tune, self.fine_tune_epochs, self.fine_tune_blocks):
            widget.setEnabled(not one)
        self.fine_tune.setText("Off: one phase, your plan" if one else "Then fine-tune top blocks")
        self.epochs_label.setText("Epochs" if one else "Head epochs")  # one phase: no head-only stage
        self.fine_tune.setToolTip(
            "Your freeze plan (Layers panel) trains as set, in one phase; choose 'Feature extraction' "
            "there for the recipe's phases"
            if one
            else FINE_TUNE_TIP
        )
