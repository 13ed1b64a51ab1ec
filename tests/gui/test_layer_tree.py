"""The Layers panel's tree: counts in the right number, and an LR × editor that shows 0.125 whole."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLineEdit, QStyle

from tlstudio.core.backbone.layer_tree import BlockNode, LayerNode, LayerTree
from tlstudio.gui.layer_tree import MULTIPLIER_COLUMN, WIDEST_MULTIPLIER
from tlstudio.gui.layers_panel import LayersPanel
from tlstudio.report_text import counted


def layer(name: str, params: int = 10) -> LayerNode:
    return LayerNode(name, "Conv2D", "(None, 8, 8, 4)", params, params, True, False)


def tree(*sizes: int) -> LayerTree:
    """One block per size, with that many layers."""
    blocks = [BlockNode(f"block{b}", [layer(f"b{b}_l{i}") for i in range(n)]) for b, n in enumerate(sizes)]
    return LayerTree("toy", blocks)


@pytest.fixture
def panel(qtbot):
    p = LayersPanel()
    qtbot.addWidget(p)
    p.resize(900, 500)
    p.show()
    qtbot.waitExposed(p)
    return p


def test_counted_says_one_thing_in_the_singular():
    assert counted(1, "layer") == "1 layer"
    assert counted(0, "layer") == "0 layers"
    assert counted(2, "usable image") == "2 usable images"
    assert counted(1, "class") == "1 class"
    assert counted(3, "class") == "3 classes"
    assert counted(2, "index", "indices") == "2 indices"


def test_a_block_of_one_layer_says_1_layer(panel):
    panel._tree_ready(tree(1, 3), None)
    model = panel.model
    assert model.data(model.index(0, 1)) == "1 layer"
    assert model.data(model.index(1, 1)) == "3 layers"
    assert model.data(model.index(2, 1)) == "4 layers"  # the new head
    assert "2 blocks, 4 layers." in panel.status.text()
    panel._tree_ready(tree(1), None)
    assert "1 block, 1 layer." in panel.status.text()


def test_the_lr_multiplier_editor_shows_0_125_whole_inside_the_view(panel, qtbot):
    panel._tree_ready(tree(2, 3), None)
    view = panel.view
    index = panel.model.index(1, MULTIPLIER_COLUMN)
    view.setCurrentIndex(index)
    view.edit(index)
    editor = view.viewport().findChild(QLineEdit)
    assert editor is not None and editor.isVisible()
    editor.setText(WIDEST_MULTIPLIER)
    metrics = editor.fontMetrics()
    frame = editor.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, None, editor)
    needed = metrics.horizontalAdvance(WIDEST_MULTIPLIER) + 2 * (frame + 2)  # text, margins, frame
    assert editor.width() >= needed, (editor.width(), needed)
    geometry = editor.geometry()
    assert geometry.left() >= 0 and geometry.right() <= view.viewport().width()  # not cut by the edge
    # the column is as wide as the editor: the value it shows is not elided either
    assert view.columnWidth(MULTIPLIER_COLUMN) >= needed
    view.commitData(editor)
    assert panel.model.multipliers["block1"] == 0.125
