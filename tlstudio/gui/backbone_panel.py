"""Backbone panel: a searchable list of every registry backbone (Keras Applications, then the
KerasHub presets when KerasHub is installed), or a model file / SavedModel / preset folder / hub."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.backbone.kerashub import PRESET_PREFIX
from tlstudio.core.backbone.registry import (
    BackboneError,
    BackboneSpec,
    list_kerashub_backbones,
    natural_key,
    resolve_backbone,
)
from tlstudio.core.settings import TrainSettings
from tlstudio.gui.rank_view import RankView
from tlstudio.gui.state import AppState, BackboneChoice
from tlstudio.gui.weights_box import WeightsBox
from tlstudio.gui.worker import Task, reason

SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # what a column sorts by (its text is for reading)
HEADERS = ("Backbone", "Family", "Parameters", "ImageNet top-1", "Input", "Min", "Preprocessing")


NO_CHOICE_TEXT = "Choose a backbone from the list, or a model of your own."
IMAGENET_TEXT = "ImageNet (downloaded once into ~/.keras/models)"
PRESET_TEXT = "The preset's pretrained weights (KerasHub downloads them once)"
OWN_TEXT = "Its own weights (from the model)"


class BackbonePanel(QWidget):
    """Emits ``chosen(spec, weights, image_size)`` whenever the choice changes; the choice itself
    lives in the app's state (``state.backbone``)."""

    chosen = Signal(object, str, int)

    def __init__(self, parent=None, state: AppState | None = None):
        super().__init__(parent)
        self.state = state or AppState()
        self.model = QStandardItemModel(0, len(HEADERS))
        self.model.setHorizontalHeaderLabels(HEADERS)
        self.specs: dict[str, BackboneSpec] = {}
        self._pending: tuple | None = None
        self.hub_listing: Task | None = None
        self.look_up: Task | None = None  # a typed hub handle being resolved
        self.hub_listed = False  # set when its result arrives (not when its thread ends: it may be queued)
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.search = QLineEdit(placeholderText="Search backbones (name or family)…")
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().selectionChanged.connect(self._picked_row)

        self.file_button = QPushButton("Model file (.keras / .h5)…")
        self.file_button.setToolTip(
            "Start from a model you trained before; it is cut at its last pooling layer"
        )
        self.file_button.clicked.connect(self._pick_file)
        self.folder_button = QPushButton("SavedModel or KerasHub preset folder…")
        self.folder_button.clicked.connect(self._pick_folder)
        self.hub = QLineEdit(placeholderText="or a handle: https://tfhub.dev/…, kerashub:NAME, kaggle://…")
        self.hub.setToolTip(
            "A TF Hub / Kaggle Models handle, a KerasHub preset (kerashub:dinov2_small) or a "
            "kaggle:// / hf:// KerasHub handle: Enter to choose it"
        )
        self.hub.returnPressed.connect(lambda: self.choose(self.hub.text().strip()))
        sources = QHBoxLayout()
        sources.addWidget(self.file_button)
        sources.addWidget(self.folder_button)
        sources.addWidget(self.hub, 1)

        self.weights = QComboBox()
        self.weights.addItem(IMAGENET_TEXT, "imagenet")
        self.weights.addItem("None: random initialisation (from-scratch baseline)", "none")
        self.weights.addItem("Weights file…", "file")
        self.weights.currentIndexChanged.connect(self._weights_changed)
        self.weights_file = ""
        self.size = QSpinBox(minimum=32, maximum=1024, singleStep=16, value=224)
        self.size.setToolTip("Square input size; smaller trains faster, larger sees more detail")
        self.size.valueChanged.connect(self._emit)
        self.summary = QLabel("Reading the list of backbones from Keras (TensorFlow is loading)…")
        self.summary.setWordWrap(True)
        form = QFormLayout()
        self.weights_box = WeightsBox()
        self.weights_box.setVisible(False)  # until a Keras Applications backbone with ImageNet weights
        form.addRow("Weights", self.weights)
        form.addRow("", self.weights_box)
        form.addRow("Image size", self.size)

        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.table, 1)
        layout.addLayout(sources)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        self.rank = RankView()
        self.rank.add_chosen.clicked.connect(
            lambda: self.spec and self.rank.add(self.spec.source or self.spec.name)
        )
        self.rank.picked.connect(self.choose)
        self.rank.settings_source = lambda: (self.weights_value(), None)  # each candidate at its own size
        layout.addWidget(self.rank)
        self.follow(self.state)

    def follow(self, state: AppState) -> None:
        """Keep the choice in ``state`` from now on (the window's one state)."""
        self.state = state
        state.subscribe("project", self.reset)

    @property
    def spec(self) -> BackboneSpec | None:
        """The chosen backbone (the state's)."""
        return self.state.backbone.spec if self.state.backbone is not None else None

    def reset(self) -> None:
        """Nothing chosen (a new project): the list's selection, weights, size and the rank table."""
        self._pending = None
        if self.look_up is not None:
            self.look_up.retire()
            self.look_up = None
        for widget in (self.table.selectionModel(), self.weights, self.size):
            widget.blockSignals(True)
        self.table.clearSelection()
        self.weights.setCurrentIndex(0)
        self.weights.setItemText(0, IMAGENET_TEXT)
        self.weights.setEnabled(True)
        self.weights_file = ""
        self.size.setMinimum(32)
        self.size.setValue(224)
        self.size.setEnabled(True)
        for widget in (self.table.selectionModel(), self.weights, self.size):
            widget.blockSignals(False)
        self.weights_box.setVisible(False)
        self.hub.clear()
        if self.ready:
            self.summary.setText(NO_CHOICE_TEXT)
        self.rank.reset()
        self.rank.candidates.clear()

    def populate(self, specs) -> None:
        """Fill the table with the registry (the window reads it from Keras in a worker thread),
        then list the KerasHub presets in a worker of its own (importing KerasHub takes seconds)."""
        self._add_rows(specs)
        if self.hub_listing is None:
            self.hub_listing = Task(list_kerashub_backbones)
            self.hub_listing.done.connect(self._hub_rows)
            self.hub_listing.failed.connect(lambda _: self._hub_rows(()))
            self.hub_listing.start()

    def _hub_rows(self, specs) -> None:
        self.hub_listed = True
        self._add_rows(specs)

    def _add_rows(self, specs) -> None:
        for spec in specs:
            self.specs[spec.name.lower()] = spec
            row = [
                QStandardItem(spec.name),
                QStandardItem(spec.family),
                QStandardItem(f"{spec.params or 0:,}"),
                QStandardItem(f"{spec.imagenet_top1:.1%}" if spec.imagenet_top1 else "—"),
                QStandardItem(str(spec.default_size)),
                QStandardItem(str(spec.min_size)),
                QStandardItem(spec.preprocessing),
            ]
            row[3].setToolTip("Top-1 accuracy on ImageNet, as the Keras documentation publishes it")
            # each column sorts by its value: names with numbers in numeric order, numbers as numbers
            for item, key in zip(
                row,
                (
                    natural_key(spec.name),
                    spec.family,
                    spec.params or 0,
                    spec.imagenet_top1 or 0.0,
                    spec.default_size,
                    spec.min_size,
                    spec.preprocessing,
                ),
                strict=True,
            ):
                item.setData(key, SORT_ROLE)
            for item in row[2:6]:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.model.appendRow(row)
        self.table.resizeColumnsToContents()
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # A→Z by name
        hub = sum(s.downloads_preset for s in self.specs.values())  # KerasHub presets
        keras = sum(s.downloads_weights_file for s in self.specs.values())  # Keras Applications
        presets = f" and {hub} KerasHub presets" if hub else ""
        if self.spec is None:
            self.summary.setText(
                f"{keras} Keras Applications backbones{presets}. Choose one, or a model of your own."
            )
        if self._pending is not None:
            name, kwargs = self._pending
            self._pending = None
            self.choose(name, **kwargs)

    @property
    def ready(self) -> bool:
        """Whether the registry is loaded."""
        return bool(self.specs)

    def choose(self, name_or_path: str, *, weights: str | None = None, image_size: int | None = None) -> None:
        """Select a backbone by name, file, folder or hub handle."""
        known = self.specs.get(name_or_path.lower())
        early = not self.specs or (name_or_path.startswith(PRESET_PREFIX) and not self.hub_listed)
        if known is None and early and not Path(name_or_path).exists() and "://" not in name_or_path:
            self._pending = (name_or_path, {"weights": weights, "image_size": image_size})
            return  # a registry name before the registry is loaded (no network here): chosen when it is
        if known is None and "://" in name_or_path and not Path(name_or_path).exists():
            self._look_up(name_or_path, weights, image_size)  # a handle reads files over the network
            return
        try:
            spec = known or resolve_backbone(name_or_path)
        except BackboneError as err:
            self.summary.setText(f"<span style='color:#b00'>{err}</span>")
            return
        self._show_spec(spec, weights, image_size)

    def _look_up(self, handle: str, weights: str | None, image_size: int | None) -> None:
        """Resolve a hub handle in a worker (a KerasHub handle fetches its config files), then show it."""
        if self.look_up is not None:
            self.look_up.retire()
        self.summary.setText(f"Looking up {handle}…")
        self.look_up = Task(lambda: resolve_backbone(handle))
        self.look_up.done.connect(lambda spec: self._show_spec(spec, weights, image_size))
        self.look_up.failed.connect(
            lambda msg: self.summary.setText(f"<span style='color:#b00'>{reason(msg)}</span>")
        )
        self.look_up.start()

    def _show_spec(self, spec: BackboneSpec, weights: str | None, image_size: int | None) -> None:
        self.state.set_backbone(BackboneChoice(spec, self.weights_value(), self.size.value()))
        if weights is not None:
            index = self.weights.findData(weights if weights in ("imagenet", "none") else "file")
            self.weights_file = weights if weights not in ("imagenet", "none") else ""
            self.weights.blockSignals(True)
            self.weights.setCurrentIndex(max(index, 0))
            self.weights.blockSignals(False)
        self.size.blockSignals(True)
        self.size.setMinimum(spec.min_size)
        self.size.setValue(image_size or spec.default_size)
        self.size.blockSignals(False)
        self.weights.setEnabled(spec.chooses_weights)
        own = PRESET_TEXT if spec.downloads_preset else OWN_TEXT
        self.weights.setItemText(0, IMAGENET_TEXT if spec.downloads_weights_file else own)
        no_file = spec.chooses_weights and not spec.takes_weights_file  # a preset carries its own weights
        if no_file and self.weights.currentData() == "file":
            self.weights.setCurrentIndex(0)
        if spec.brings_own_weights:  # a preset, model file or SavedModel
            self.weights.setToolTip(
                "This backbone starts from its own weights; 'None' is its from-scratch baseline"
            )
        if spec.fixed_size:  # a ViT preset: its position embeddings fix the size
            self.size.setValue(spec.fixed_size)
        # a model file (and a ViT preset) brings its own input size
        self.size.setEnabled(not spec.brings_own_size and not spec.fixed_size)
        self._emit()

    def show_settings(self, s: TrainSettings) -> None:
        """Select the project's backbone, weights and image size (nothing when none is set)."""
        if s.backbone:
            self.choose(s.backbone, weights=s.weights, image_size=s.image_size)

    def apply_to(self, s: TrainSettings) -> TrainSettings:
        """Settings with the chosen backbone (unchanged while none is chosen)."""
        if self.spec is None:
            return s
        size = None if self.spec.brings_own_size else self.size.value()  # a model file fixes its own
        return s.but(
            backbone=self.spec.source or self.spec.name, weights=self.weights_value(), image_size=size
        )

    def weights_value(self) -> str:
        """ "imagenet", "none" or a file path."""
        data = self.weights.currentData()
        return self.weights_file if data == "file" else data

    def _emit(self) -> None:
        if self.spec is None:
            return
        spec = self.spec
        params = f"{spec.params:,} parameters" if spec.params else "parameters counted when built"
        preset_folder = spec.downloads_preset and Path(spec.source).is_dir()
        where = f"{spec.origin} folder {spec.source}" if preset_folder else spec.origin
        note = ""
        imagenet = spec.downloads_weights_file and self.weights_value() == "imagenet"
        preset = (  # a named preset or kaggle handle (hf:// downloads report no progress)
            spec.downloads_preset
            and self.weights_value() == "imagenet"
            and not preset_folder
            and not spec.source.startswith("hf://")
        )
        self.weights_box.setVisible(imagenet or preset)
        if imagenet and self.ready:
            self.weights_box.set_backbone(spec.name, self.size.value())
        elif preset:
            self.weights_box.set_preset(spec.source)
        size = (
            "its own input size" if spec.brings_own_size else f"input {self.size.value()}×{self.size.value()}"
        )
        preprocessing = "as the preset says" if spec.preprocessing == "preset" else f"'{spec.preprocessing}'"
        self.summary.setText(
            f"<b>{spec.name}</b> — {where}; {spec.family}; {params}; {size}; "
            f"preprocessing {preprocessing} inside the model.{note}"
        )
        self.state.set_backbone(BackboneChoice(spec, self.weights_value(), self.size.value()))
        self.chosen.emit(spec, self.weights_value(), self.size.value())

    def _picked_row(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.choose(self.proxy.data(rows[0]))

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Keras models (*.keras *.h5 *.hdf5)")
        if path:
            self.choose(path)

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "SavedModel or KerasHub preset folder")
        if folder:
            self.choose(folder)

    def _weights_changed(self) -> None:
        if self.weights.currentData() == "file" and not self.weights_file:
            path, _ = QFileDialog.getOpenFileName(self, "Weights file", "", "Weights (*.h5 *.weights.h5)")
            if not path:
                self.weights.setCurrentIndex(0)
                return
            self.weights_file = path
        self._emit()
