"""Layers panel: the backbone's block/layer tree with checkboxes, presets, totals and the head."""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from tlstudio.core.backbone.layer_tree import LayerTree, head_pooling
from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.settings import HeadSettings, TrainSettings, parse_dense_units
from tlstudio.gui.layer_tree import MULTIPLIER_COLUMN, LayerTreeModel, MultiplierDelegate
from tlstudio.gui.worker import Task, failure_line
from tlstudio.report_text import counted

# What a head that does not pool starts with, in words (``head_pooling``'s other answers)
HEAD_STARTS = {"class token": "the class token", "none": "the backbone's pooled output"}

DENSE_PATTERN = r"^\s*([1-9]\d*\s*,\s*)*([1-9]\d*)?\s*$"  # what parse_dense_units takes


def build_tree_for(spec, image_size: int, cut_at: str | None = None) -> LayerTree:
    """Build the backbone (random weights: the structure is the same) and return its tree."""
    from tlstudio.core.backbone.layer_tree import build_layer_tree
    from tlstudio.core.backbone.registry import build_backbone

    backbone = build_backbone(spec, weights="none", image_size=image_size, cut_at=cut_at)
    return build_layer_tree(backbone, class_token=spec.class_token)


NO_BACKBONE_TEXT = "Choose a backbone to see its layers."


class LayersPanel(QWidget):
    """Edits the freeze plan and the head; emits ``plan_changed`` with (FreezePlan, HeadSettings)."""

    plan_changed = Signal(object, object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.task: Task | None = None
        self.model = LayerTreeModel(self)
        self.model.changed.connect(self._changed)
        self.model.head_changed.connect(self._head_edited_in_tree)
        self.view = QTreeView()
        self.view.setModel(self.model)
        self.view.setItemDelegateForColumn(MULTIPLIER_COLUMN, MultiplierDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)  # shift-click ranges
        self.view.setAlternatingRowColors(True)
        self.view.header().setStretchLastSection(False)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.status = QLabel(NO_BACKBONE_TEXT)
        self.totals = QLabel("")
        self.totals.setAlignment(Qt.AlignmentFlag.AlignRight)

        self.all_frozen = QPushButton("Feature extraction")
        self.all_frozen.setToolTip(
            "Freeze the whole backbone; train only the new head (then fine-tune: see the Train panel)"
        )
        self.top_blocks = QSpinBox(minimum=1, maximum=999, value=2)
        self.top_button = QPushButton("Train top blocks")
        self.top_button.setToolTip("Freeze everything but the top N blocks")
        self.all_trainable = QPushButton("Fine-tune all")
        self.batchnorm = QCheckBox("Train BatchNorm")
        self.batchnorm.setToolTip("Off (recommended): BatchNorm layers stay frozen, in inference mode")
        self.all_frozen.clicked.connect(lambda: self.apply_preset(FreezePlan("all")))
        self.top_button.clicked.connect(lambda: self.apply_preset(FreezePlan("top", self.top_blocks.value())))
        self.all_trainable.clicked.connect(lambda: self.apply_preset(FreezePlan("none")))
        self.batchnorm.toggled.connect(self._batchnorm_toggled)
        presets = QHBoxLayout()
        for w in (self.all_frozen, self.top_blocks, self.top_button, self.all_trainable, self.batchnorm):
            presets.addWidget(w)
        presets.addStretch(1)
        presets.addWidget(self.totals)

        self.dropout = QDoubleSpinBox(
            decimals=2, minimum=0.0, maximum=0.9, singleStep=0.05, value=HeadSettings().dropout
        )
        self.dropout.setToolTip("Dropout before the new classifier: regularises a head trained on few images")
        self.dense = QLineEdit(placeholderText="e.g. 256,128 (empty: none)")
        self.dense.setValidator(QRegularExpressionValidator(QRegularExpression(DENSE_PATTERN), self.dense))
        self.dense.setToolTip("Extra dense layers between pooling and the classifier")
        self.pooling = QCheckBox("Max pooling instead of average")
        for w in (self.dropout, self.dense, self.pooling):
            signal = (
                w.valueChanged
                if hasattr(w, "valueChanged")
                else (w.textChanged if hasattr(w, "textChanged") else w.toggled)
            )
            signal.connect(self._changed)
        head_form = QFormLayout()
        head_form.addRow("Dropout", self.dropout)
        head_form.addRow("Dense layers", self.dense)
        head_form.addRow("", self.pooling)
        self.head_box = QGroupBox()
        self.head_box.setLayout(head_form)
        self._show_head_pooling("GlobalAveragePooling2D")

        freeze_selected = QAction("Freeze selected", self, shortcut=QKeySequence("Ctrl+F"))
        freeze_selected.triggered.connect(lambda: self._set_selected(False))
        unfreeze_selected = QAction("Unfreeze selected", self, shortcut=QKeySequence("Ctrl+U"))
        unfreeze_selected.triggered.connect(lambda: self._set_selected(True))
        self.view.addActions([freeze_selected, unfreeze_selected])
        self.actions_for_menu = (freeze_selected, unfreeze_selected)

        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(presets)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.head_box)

    def reset(self) -> None:
        """No backbone (a new project): the tree, its build under way and the totals are dropped."""
        if self.task is not None:
            self.task.retire()
            self.task = None
        self.model.set_tree(None)
        self.batchnorm.blockSignals(True)
        self.batchnorm.setChecked(False)
        self.batchnorm.blockSignals(False)
        self.status.setText(NO_BACKBONE_TEXT)
        self.totals.setText("")

    # -- building ------------------------------------------------------------------------------------
    def show_backbone(self, spec, image_size: int, plan: FreezePlan | None = None) -> None:
        """Build the tree for a backbone in a worker thread (TensorFlow work)."""
        if self.task is not None and self.task.is_running():
            self.task.retire()
        self.status.setText(f"Building {spec.name} to read its layers…")
        self.task = Task(lambda: build_tree_for(spec, image_size))
        self.task.done.connect(lambda tree: self._tree_ready(tree, plan))
        self.task.failed.connect(
            lambda msg: self.status.setText(f"Could not build the backbone: {failure_line(msg)}")
        )
        self.task.start()

    def _tree_ready(self, tree: LayerTree, plan: FreezePlan | None) -> None:
        self.batchnorm.blockSignals(True)
        self.batchnorm.setChecked(bool(plan and plan.train_batchnorm))
        self.batchnorm.blockSignals(False)
        self.model.set_tree(tree, plan)
        self.view.expandAll()
        for column in range(1, 6):
            self.view.resizeColumnToContents(column)
        self.view.collapseAll()
        self.view.expand(self.model.index(self.model.rowCount() - 1, 0))  # the new head
        self.view.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self._show_head_pooling(head_pooling("avg", tree.output_rank, tree.class_token))
        self.status.setText(
            f"<b>{tree.name}</b>: {counted(len(tree.blocks), 'block')}, "
            f"{counted(len(tree.layers), 'layer')}. "
            "Tick what trains; right-click for 'freeze up to here'; double-click LR × to set "
            "a block's learning-rate multiplier."
        )
        self._changed()

    # -- editing -------------------------------------------------------------------------------------
    def apply_preset(self, plan: FreezePlan) -> None:
        """Set the checkboxes from a preset plan."""
        self.model.use_preset(plan)

    def plan(self) -> FreezePlan:
        """The current choice as a core freeze plan (the preset itself while untouched)."""
        if self.model.choice is None:
            return FreezePlan("all", train_batchnorm=self.batchnorm.isChecked())
        return self.model.choice.plan()

    def head(self) -> HeadSettings:
        """The head as core settings."""
        return HeadSettings(
            pooling="max" if self.pooling.isChecked() else "avg",
            dropout=self.dropout.value(),
            dense_units=parse_dense_units(self.dense.text()),
        )

    def show_settings(self, s: TrainSettings) -> None:
        """Show a project's head (its freeze plan shows with the backbone's tree: ``show_backbone``)."""
        self._head_edited_in_tree(s.head)

    def apply_to(self, s: TrainSettings) -> TrainSettings:
        """Settings with this panel's head, and its freeze plan once a tree is shown."""
        s = s.but(head=self.head())
        return s.but(freeze=self.plan()) if self.model.choice is not None else s

    def _changed(self) -> None:
        trainable, frozen = self.model.trainable_params()
        self.totals.setText(
            f"backbone: <b>{trainable:,}</b> trainable / {frozen:,} frozen parameters"
            if self.model.tree is not None
            else ""
        )
        head = self.head()
        if head != self.model.head:
            self.model.set_head(head)  # the form below and the tree's head node show the same
        self.plan_changed.emit(self.plan(), head)

    def _show_head_pooling(self, first: str) -> None:
        """Title the head box with what the head starts with; max pooling only where it pools."""
        pools = "Pooling" in first
        start = "global pooling" if pools else HEAD_STARTS.get(first, "a flatten")
        self.head_box.setTitle(f"New head (also the tree's last node): {start} → dropout → dense → softmax")
        self.pooling.setEnabled(pools)
        self.pooling.setToolTip(
            "" if pools else f"This backbone's head starts with {start}: there is nothing to pool."
        )

    def _head_edited_in_tree(self, head: HeadSettings) -> None:
        for widget in (self.dropout, self.dense, self.pooling):
            widget.blockSignals(True)
        self.dropout.setValue(head.dropout)
        self.dense.setText(",".join(str(u) for u in head.dense_units))
        self.pooling.setChecked(head.pooling == "max")
        for widget in (self.dropout, self.dense, self.pooling):
            widget.blockSignals(False)
        self._changed()

    def _batchnorm_toggled(self, on: bool) -> None:
        self.model.set_batchnorm(on)

    def _selected_layer_names(self) -> list[str]:
        names = []
        for index in self.view.selectionModel().selectedRows(0):
            if self.model.is_head(index):
                continue
            if index.parent().isValid():
                names.append(self.model.data(index))
            else:
                names.extend(x.name for x in self.model.tree.blocks[index.row()].layers)
        return names

    def _set_selected(self, trainable: bool) -> None:
        if self.model.tree is not None:
            self.model.set_trainable(self._selected_layer_names(), trainable)

    def _menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid() or self.model.tree is None or self.model.is_head(index):
            return
        order = self.model.layer_names()
        name = self.model.data(self.model.index(index.row(), 0, index.parent()))
        if not index.parent().isValid():  # a block: up to its last layer / from its first
            layers = self.model.tree.blocks[index.row()].layers
            last, first = layers[-1].name, layers[0].name
        else:
            last = first = name
        menu = QMenu(self)
        up_to = menu.addAction("Freeze everything up to here")
        from_here = menu.addAction("Unfreeze from here to the top")
        menu.addSeparator()
        for action in self.actions_for_menu:
            menu.addAction(action)
        chosen = menu.exec(self.view.viewport().mapToGlobal(pos))
        if chosen is up_to:
            self.model.set_trainable(order[: order.index(last) + 1], False)
        elif chosen is from_here:
            self.model.set_trainable(order[order.index(first) :], True)
