"""``QAbstractItemModel`` over the core's layer tree: blocks with tri-state checkboxes, then layers.

A checked layer is *trainable*; unchecked is frozen. Checking a block sets all of its layers.
Learning-rate multipliers are edited in the block rows, with ``MultiplierDelegate``'s editor. The
rules (BatchNorm, block states, totals, the plan the choice makes) are the core's ``FreezeChoice``;
this model only shows and edits it.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics
from PySide6.QtWidgets import QLineEdit, QStyle, QStyledItemDelegate, QWidget

from tlstudio.core.backbone.freeze_choice import FreezeChoice
from tlstudio.core.backbone.layer_tree import LayerTree, head_pooling
from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.settings import HeadSettings, parse_dense_units
from tlstudio.report_text import counted

COLUMNS = ("Layer", "Type", "Output shape", "Parameters", "Trainable", "LR ×")
MULTIPLIER_COLUMN = 5
WIDEST_MULTIPLIER = "0.125"  # what the LR × editor must show whole
HEAD_ROWS = ("pooling", "dropout", "dense layers", "predictions")
_BLOCK = 0  # internal id of block rows; layer rows carry their block row + 1

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
_CHECK = {
    "on": Qt.CheckState.Checked,
    "off": Qt.CheckState.Unchecked,
    "partial": Qt.CheckState.PartiallyChecked,
}


class LayerTreeModel(QAbstractItemModel):
    """Two levels: block rows (internal id 0) and their layer rows (internal id = block row + 1).

    After the backbone's blocks comes one more top-level row, the new head, whose rows (pooling,
    dropout, dense layers, predictions) are edited in the "Output shape" column.
    """

    changed = Signal()  # the frozen set or the multipliers changed
    head_changed = Signal(object)  # HeadSettings edited in the tree's last node

    def __init__(self, parent=None):
        super().__init__(parent)
        self.choice: FreezeChoice | None = None  # the rules live in the core; this model shows them
        self.head = HeadSettings()

    @property
    def tree(self) -> LayerTree | None:
        """The backbone's tree, or None before one is shown."""
        return self.choice.tree if self.choice else None

    @property
    def frozen(self) -> set[str]:
        """The layer names frozen now."""
        return self.choice.frozen if self.choice else set()

    @property
    def multipliers(self) -> dict[str, float]:
        """Learning-rate multipliers edited per block."""
        return self.choice.multipliers if self.choice else {}

    # -- content -------------------------------------------------------------------------------
    def set_tree(self, tree: LayerTree | None, plan: FreezePlan | None = None) -> None:
        """Show a new tree with the choice ``plan`` makes on it (feature extraction by default)."""
        self.beginResetModel()
        self.choice = FreezeChoice.from_plan(tree, plan) if tree is not None else None
        self.endResetModel()

    def use_preset(self, plan: FreezePlan) -> None:
        """Set the check boxes from a preset plan."""
        if self.choice is not None:
            self.choice.use_preset(plan)
            self._refresh()

    def set_batchnorm(self, on: bool) -> None:
        """Let BatchNorm layers train (or not) and refresh the boxes."""
        if self.choice is not None:
            self.choice.set_batchnorm(on)
            self._refresh()

    def set_head(self, head: HeadSettings) -> None:
        """Show new head settings in the last node (no ``head_changed``)."""
        self.head = head
        if self.tree is not None:
            parent = self.index(len(self.tree.blocks), 0)
            self.dataChanged.emit(
                self.index(0, 0, parent), self.index(len(HEAD_ROWS) - 1, len(COLUMNS) - 1, parent)
            )

    def head_values(self) -> list[tuple[str, str, str]]:
        """(name, type, value) rows of the head node."""
        h = self.head
        dense = ",".join(str(u) for u in h.dense_units) or "none"
        rank, token = (self.tree.output_rank, self.tree.class_token) if self.tree else (4, False)
        first = head_pooling(h.pooling, rank, token)
        return [
            ("pooling", first, {"class token": "first token", "none": "—"}.get(first, h.pooling)),
            ("dropout", "Dropout", f"{h.dropout:g}"),
            ("dense layers", "Dense (relu)", dense),
            ("predictions", "Dense (softmax)", "one output per class"),
        ]

    def is_head(self, index: Index) -> bool:
        """Whether ``index`` is the head node or one of its rows."""
        if self.tree is None or not index.isValid():
            return False
        row = index.row() if index.internalId() == _BLOCK else int(index.internalId()) - 1
        return row == len(self.tree.blocks)

    def layer_names(self, from_row: int | None = None, to_row: int | None = None) -> list[str]:
        """Layer names in order, optionally of blocks ``from_row``..``to_row``."""
        if self.tree is None:
            return []
        blocks = self.tree.blocks[from_row:to_row]
        return [layer.name for block in blocks for layer in block.layers]

    def trainable_params(self) -> tuple[int, int]:
        """(trainable, frozen) parameter counts of the backbone under the current choice."""
        return self.choice.totals() if self.choice else (0, 0)

    # -- Qt model API ------------------------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = _ROOT) -> QModelIndex:
        if self.tree is None or not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, _BLOCK)
        return self.createIndex(row, column, parent.row() + 1)

    def parent(self, index: Index = _ROOT) -> QModelIndex:  # type: ignore[override]
        if not index.isValid() or index.internalId() == _BLOCK:
            return QModelIndex()
        return self.createIndex(int(index.internalId()) - 1, 0, _BLOCK)

    def rowCount(self, parent: Index = _ROOT) -> int:
        if self.tree is None:
            return 0
        if not parent.isValid():
            return len(self.tree.blocks) + 1  # the blocks, then the new head
        if parent.internalId() == _BLOCK and parent.column() == 0:
            if parent.row() == len(self.tree.blocks):
                return len(HEAD_ROWS)
            return len(self.tree.blocks[parent.row()].layers)
        return 0

    def columnCount(self, parent: Index = _ROOT) -> int:
        return len(COLUMNS)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index: Index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if self.is_head(index):
            editable = (
                index.internalId() != _BLOCK
                and index.column() == 2
                and HEAD_ROWS[index.row()] != "predictions"
            )
            return flags | Qt.ItemFlag.ItemIsEditable if editable else flags
        if index.column() == 0:
            layer = self._layer(index)
            if layer is None or not layer.is_batchnorm or self.choice.train_batchnorm:
                flags |= Qt.ItemFlag.ItemIsUserCheckable
            if layer is None:
                flags |= Qt.ItemFlag.ItemIsAutoTristate
        if index.column() == MULTIPLIER_COLUMN and self._layer(index) is None:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.tree is None:
            return None
        if self.is_head(index):
            return self._head_data(index, role)
        layer = self._layer(index)
        block = self.tree.blocks[index.row() if layer is None else int(index.internalId()) - 1]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole or role == Qt.ItemDataRole.EditRole:
            if layer is None:
                trainable = self.choice.trainable_params(block)
                values = (
                    block.name,
                    counted(len(block.layers), "layer"),
                    "",
                    f"{block.params:,}",
                    f"{trainable:,}",
                    f"{self.multipliers.get(block.name, 1.0):g}",
                )
            else:
                values = (
                    layer.name,
                    layer.type + (" (BN)" if layer.is_batchnorm else ""),
                    layer.output_shape,
                    f"{layer.params:,}",
                    "yes" if self.choice.is_trainable(layer) else "no",
                    "",
                )
            return values[column]
        if role == Qt.ItemDataRole.CheckStateRole and column == 0:
            return self._check_state(block, layer)
        if role == Qt.ItemDataRole.ForegroundRole and layer is not None and layer.is_batchnorm:
            return QBrush(QColor("#7a5c00"))
        if role == Qt.ItemDataRole.FontRole and layer is None:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole and layer is not None and layer.is_batchnorm:
            return "BatchNorm: kept frozen, in inference mode (allow it under 'Train BatchNorm')"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (3, 4, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def setData(self, index: Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or self.tree is None:
            return False
        if self.is_head(index):
            return self._set_head_value(index, value, role)
        layer = self._layer(index)
        if role == Qt.ItemDataRole.CheckStateRole and index.column() == 0:
            trainable = Qt.CheckState(value) != Qt.CheckState.Unchecked
            names = [layer.name] if layer else [x.name for x in self.tree.blocks[index.row()].layers]
            self.set_trainable(names, trainable)
            return True
        if role == Qt.ItemDataRole.EditRole and index.column() == MULTIPLIER_COLUMN and layer is None:
            try:
                multiplier = float(value)
            except (TypeError, ValueError):
                return False
            if not 0 < multiplier <= 10:
                return False
            self.multipliers[self.tree.blocks[index.row()].name] = multiplier
            self.dataChanged.emit(index, index)
            self.changed.emit()
            return True
        return False

    def set_trainable(self, names: list[str], trainable: bool) -> None:
        """Freeze or unfreeze layers by name (BatchNorm stays frozen unless allowed)."""
        assert self.choice is not None
        self.choice.set_trainable(names, trainable)
        self._refresh()

    # -- the head node ------------------------------------------------------------------------------
    def _head_data(self, index: Index, role: int):
        if index.internalId() == _BLOCK:
            if role == Qt.ItemDataRole.DisplayRole:
                return ("head (new)", counted(len(HEAD_ROWS), "layer"), "", "", "always", "1")[index.column()]
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setBold(True)
                return font
            if role == Qt.ItemDataRole.ToolTipRole:
                return (
                    "The new classifier on the backbone; it always trains. Double-click a value to edit it."
                )
            return None
        name, kind, value = self.head_values()[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return (name, kind, value, "", "yes", "")[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(QColor("#1a5e20"))
        return None

    def _set_head_value(self, index: Index, value, role: int) -> bool:
        if role != Qt.ItemDataRole.EditRole or index.internalId() == _BLOCK or index.column() != 2:
            return False
        name = HEAD_ROWS[index.row()]
        text = str(value).strip().lower()
        try:
            if name == "pooling":
                if text not in ("avg", "max"):
                    return False
                head = replace(self.head, pooling=text)
            elif name == "dropout":
                rate = float(text)
                if not 0 <= rate < 1:
                    return False
                head = replace(self.head, dropout=rate)
            elif name == "dense layers":
                head = replace(self.head, dense_units=parse_dense_units(text))
            else:
                return False
        except ValueError:
            return False
        self.head = head
        self.dataChanged.emit(index, index)
        self.head_changed.emit(head)
        return True

    # -- helpers -----------------------------------------------------------------------------------
    def _layer(self, index: Index):
        if index.internalId() == _BLOCK:
            return None
        return self.tree.blocks[int(index.internalId()) - 1].layers[index.row()]

    def _check_state(self, block, layer):
        if layer is not None:
            return Qt.CheckState.Checked if self.choice.is_trainable(layer) else Qt.CheckState.Unchecked
        return _CHECK[self.choice.block_state(block)]

    def _refresh(self) -> None:
        if self.tree is None:
            return
        last = len(self.tree.blocks)  # the head node too
        self.dataChanged.emit(self.index(0, 0), self.index(last, len(COLUMNS) - 1))
        for row, block in enumerate(self.tree.blocks):
            parent = self.index(row, 0)
            self.dataChanged.emit(
                self.index(0, 0, parent), self.index(len(block.layers) - 1, len(COLUMNS) - 1, parent)
            )
        self.changed.emit()


class MultiplierDelegate(QStyledItemDelegate):
    """The LR × column's editor, wide enough for a value like 0.125 (the column's own width comes
    from its header and its values, "1" mostly: the editor was two characters wide)."""

    def editor_width(self, widget: QWidget) -> int:
        """Pixels a line edit in ``widget``'s font needs to show ``WIDEST_MULTIPLIER`` and a cursor."""
        metrics = QFontMetrics(widget.font())
        frame = widget.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, None, widget)
        # QLineEdit's own horizontal margin is 2 px a side; one average character more for the cursor
        return metrics.horizontalAdvance(WIDEST_MULTIPLIER) + metrics.averageCharWidth() + 2 * (frame + 2)

    def createEditor(self, parent, option, index) -> QLineEdit:
        # (Qt's own editor widens as one types, but not past the view's edge, where this column is)
        editor = QLineEdit(parent)
        editor.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        editor.setMinimumWidth(self.editor_width(editor))
        return editor

    def updateEditorGeometry(self, editor, option, index) -> None:
        super().updateEditorGeometry(editor, option, index)  # (at least its minimum width, from the left)
        rect = editor.geometry()
        if rect.right() > option.rect.right():  # grown to the right, out of view: grow leftwards instead
            rect.moveRight(option.rect.right())
            editor.setGeometry(rect)

    def sizeHint(self, option, index) -> QSize:
        hint = super().sizeHint(option, index)
        if index.flags() & Qt.ItemFlag.ItemIsEditable and isinstance(option.widget, QWidget):
            hint.setWidth(max(hint.width(), self.editor_width(option.widget)))
        return hint
