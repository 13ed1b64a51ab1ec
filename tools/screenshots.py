"""Screenshots of every panel of the real window, at 1366×768 and 1920×1080, from a real X server.

Run:  xvfb-run -s "-screen 0 1920x1080x24" python tools/screenshots.py [--out docs/screenshots]

With a DISPLAY, the window is shown on that X server (Qt's xcb platform) and each PNG is what the
screen shows (``QScreen.grabWindow``); without one it falls back to offscreen widget grabs. The
Train panel is also taken in the dark theme.

Uses the bundled sample dataset and the demo CNN as a model-file backbone, trains a few epochs so
the curves have points, and exports once, so every panel shows real content.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = ((1366, 768), (1920, 1080))
PANELS = {
    0: "start",
    1: "data",
    2: "backbone",
    3: "layers",
    4: "train",
    5: "evaluate",
    6: "try-it",
    7: "export",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings, QStandardPaths
    from PySide6.QtWidgets import QApplication

    from tlstudio.cli import demo_backbone
    from tlstudio.core.project import Project
    from tlstudio.gui.main_window import MainWindow
    from tlstudio.package_data import sample_dataset

    QStandardPaths.setTestModeEnabled(True)
    app = QApplication([])
    from tlstudio.gui.theme import apply_theme

    apply_theme(app, "light")
    on_screen = os.environ["QT_QPA_PLATFORM"] == "xcb"
    work = Path(tempfile.mkdtemp(prefix="tlstudio-shots-"))
    window = MainWindow(QSettings(str(work / "s.ini"), QSettings.Format.IniFormat))
    window.resize(*SIZES[0])
    window.show()

    def wait(condition, seconds=300.0):
        end = time.time() + seconds
        while time.time() < end and not condition():
            app.processEvents()
            time.sleep(0.02)
        if not condition():
            raise SystemExit(f"timed out waiting (line {condition.__code__.co_firstlineno})")

    def shoot(tag: str) -> None:
        for width, height in SIZES:
            window.move(0, 0)
            window.resize(width, height)
            for _ in range(20):
                app.processEvents()
            window.train.curves.render_now()
            for _ in range(10):
                app.processEvents()
                time.sleep(0.02)
            assert window.width() <= width, f"{tag}: the window is wider than {width} px"
            if on_screen:
                g = window.frameGeometry()
                shot = app.primaryScreen().grabWindow(0, g.x(), g.y(), g.width(), g.height())
            else:
                shot = window.grab()
            shot.save(str(args.out / f"{tag}-{width}x{height}.png"))

    shoot("start-empty")
    import shutil

    data = work / "digits"  # a copy with four labels made wrong, for the label check's screenshot
    shutil.copytree(sample_dataset(), data)
    for source, wrong in (
        ("3_three", "8_eight"),
        ("7_seven", "1_one"),
        ("4_four", "9_nine"),
        ("0_zero", "6_six"),
    ):
        first = sorted((data / source).glob("*.png"))[5]
        first.rename(data / wrong / f"from_{source}_{first.name}")
    from PIL import Image

    # for the quality tab: a copy of a three filed as a five, a dark two, a blank image
    three = Image.open(sorted((data / "3_three").glob("*.png"))[0])
    three.resize((64, 64)).save(data / "5_five" / "copy_of_a_three.png")
    two = Image.open(sorted((data / "2_two").glob("*.png"))[0])
    two.point(lambda v: v // 10).save(data / "2_two" / "dark_two.png")
    Image.new("L", (32, 32), 128).save(data / "1_one" / "blank.png")
    unlabelled = work / "unlabelled"  # for Label next: images the runs never see
    unlabelled.mkdir()
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        for image in sorted(folder.glob("digit_*.png"))[-4:]:
            image.rename(unlabelled / image.name)
    window.set_project(Project(path=work / "digits.tlstudio.json", data_dir=str(data)))
    wait(lambda: window.data.report is not None)
    wait(lambda: window.backbone.ready)
    backbone = demo_backbone(work)  # after the window's loader: TensorFlow is imported by one thread
    window.nav.setCurrentRow(2)
    window.backbone.search.setText("net")
    app.processEvents()
    shoot("backbone")
    window.backbone.search.setText("")
    window.backbone.choose(str(backbone))
    wait(lambda: window.layers.model.tree is not None)
    window.layers.all_trainable.click()
    window.layers.view.expand(window.layers.model.index(1, 0))
    window.train.form.epochs.setValue(12)
    window.train.form.fine_tune.setChecked(False)
    window.train.form.flip.setChecked(False)
    window.train.form.learning_rate.setValue(0.003)
    window.start_training()
    wait(lambda: not window.train.is_running())
    window.export.export_to(str(work / "exported"))
    wait(lambda: not window.export.task.is_running())
    evaluate = window.evaluate
    worst = max(
        (
            (i, j)
            for i in range(evaluate.confusion.rowCount())
            for j in range(evaluate.confusion.rowCount())
            if i != j
        ),
        key=lambda ij: evaluate.confusion.matrix[ij[0]][ij[1]],
    )
    evaluate.matrix.clicked.emit(evaluate.confusion.index(*worst))  # the most common confusion
    if not evaluate.errors.gallery_model.items:  # no errors at all this time: the least confident images
        evaluate.errors.order.setCurrentText("Least confident")
        evaluate.errors.show_errors()
    evaluate.errors.gallery.setCurrentIndex(evaluate.errors.gallery_model.index(0))
    evaluate.errors.cam_button.click()
    wait(lambda: not evaluate.errors.task.is_running())
    tried = sorted(unlabelled.glob("*.png"))[::7][:6]  # Try it: images the run never saw
    window.try_it.add_images(tried)
    wait(lambda: not window.try_it.task.is_running() and len(window.try_it.words) == len(tried))
    window.try_it.images.setCurrentRow(1)
    for row, name in PANELS.items():
        if name in ("backbone",):
            continue
        window.nav.setCurrentRow(row)
        shoot(name)
    window.nav.setCurrentRow(4)
    apply_theme(app, "dark")
    shoot("train-dark")
    apply_theme(app, "light")
    # the label check, judged by the run's own model (a backbone that knows digits)
    window.backbone.choose(str(window.train.run_dir / "model.keras"))
    wait(lambda: not window.missing_steps())
    window.nav.setCurrentRow(1)
    window.data.tabs.setCurrentWidget(window.data.label_issues)
    window.data.label_issues.check.click()
    wait(lambda: window.data.label_issues.check.isEnabled() and bool(window.data.label_issues.model.items))
    window.data.label_issues.list.setCurrentIndex(window.data.label_issues.model.index(0))
    shoot("data-label-issues")
    window.data.tabs.setCurrentWidget(window.data.quality)
    shoot("data-quality")
    label_next = window.data.label_next
    window.data.tabs.setCurrentWidget(label_next)
    label_next.set_folder(unlabelled)
    label_next.count.setValue(12)
    label_next.suggest_button.click()
    wait(lambda: label_next.suggest_button.isEnabled() and bool(label_next.model.items))
    shoot("data-label-next")
    window.nav.setCurrentRow(2)  # Rank on my data: the sample's small CNN against the run's own model
    rank = window.backbone.rank
    rank.candidates.setText(f"{backbone}, {window.train.run_dir / 'model.keras'}")
    rank.rank_button.click()
    wait(lambda: rank.rank_button.isEnabled() and rank.table.rowCount() > 0)
    shoot("backbone-rank")
    kerashub_shots(window, work, wait, shoot)
    window.close()
    print(f"screenshots in {args.out}")


def kerashub_shots(window, work: Path, wait, shoot) -> None:
    """KerasHub presets in the list (one chosen: its download box), then a small ViT preset folder
    (random weights, made here) in the Layers panel: a block per transformer layer."""
    try:
        import keras_hub
    except ImportError:
        print("KerasHub is not installed: no KerasHub screenshots")
        return
    wait(lambda: "kerashub:dinov2_small" in window.backbone.specs)
    folder = work / "vit_tiny_preset"
    keras_hub.models.ViTBackbone(
        image_shape=(64, 64, 3), patch_size=8, num_layers=6, num_heads=4, hidden_dim=64, mlp_dim=128
    ).save_to_preset(str(folder))
    window.nav.setCurrentRow(2)
    window.backbone.search.setText("dinov2")
    window.backbone.choose("kerashub:dinov2_small")
    wait(
        lambda: (
            "KerasHub" in window.backbone.weights_box.status.text()
            or "preset" in window.backbone.weights_box.status.text()
        )
    )
    shoot("backbone-kerashub")
    window.backbone.search.setText("")
    window.backbone.choose(str(folder))
    wait(
        lambda: (
            window.layers.model.tree is not None
            and "transformer_block_1" in [b.name for b in window.layers.model.tree.blocks]
        )
    )
    window.layers.top_blocks.setValue(2)
    window.layers.top_button.click()
    window.nav.setCurrentRow(3)
    shoot("layers-kerashub")


if __name__ == "__main__":
    main()
