"""The learning curves' phase labels never overlap, however short the phases (rendered with Agg)."""

from __future__ import annotations

import pytest

from tlstudio.gui.curves import _Renderer


@pytest.fixture
def renderer():
    r = _Renderer()
    yield r
    r.stop()
    assert not r.thread.is_alive()


def epochs(n: int) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "loss": 1 / e,
            "val_loss": 1.2 / e,
            "accuracy": 0.5,
            "val_accuracy": 0.5,
            "learning_rate": 1e-3,
        }
        for e in range(1, n + 1)
    ]


def label_boxes(renderer):
    return [label.get_window_extent(renderer.canvas.get_renderer()) for label in renderer.phase_labels]


@pytest.mark.parametrize(
    "size, phases, n",
    [
        ((700, 500), [(0.0, "probe"), (1.0, "fine-tune")], 30),  # a one-epoch probe, then fine-tuning
        ((400, 300), [(0.0, "probe"), (1.0, "fine-tune"), (2.0, "train-all")], 60),
        ((700, 500), [(0.0, "head"), (0.0, "fine-tune")], 5),  # the same epoch
    ],
)
def test_phase_labels_do_not_overlap(renderer, size, phases, n):
    image = renderer.render(size, [], epochs(n), phases)
    assert not image.isNull()
    boxes = label_boxes(renderer)
    assert [label.get_text() for label in renderer.phase_labels] == [name for _, name in phases]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    top = renderer.ax_loss.get_window_extent()
    assert all(top.y0 <= box.y0 and box.y1 <= top.y1 for box in boxes)  # inside the loss plot


def test_phase_labels_far_apart_share_the_top_row(renderer):
    renderer.render((700, 500), [], epochs(30), [(0.0, "probe"), (15.0, "fine-tune")])
    first, second = label_boxes(renderer)
    assert first.y0 == pytest.approx(second.y0)
    # a later redraw with closer phases moves them apart again, and drops the old labels
    renderer.render((700, 500), [], epochs(30), [(0.0, "probe"), (1.0, "fine-tune")])
    first, second = label_boxes(renderer)
    assert len(renderer.ax_loss.texts) == 3  # the placeholder and two labels
    assert not first.overlaps(second)
