"""Render resources/icons/tlstudio.svg to the PNG sizes a desktop asks for (run after editing the SVG).

QT_QPA_PLATFORM=offscreen python tools/render_icons.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (fonts, image IO)
    renderer = QSvgRenderer(str(ICONS / "tlstudio.svg"))
    if not renderer.isValid():
        print("tlstudio.svg does not parse", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        image.save(str(ICONS / f"tlstudio-{size}.png"))
    # Windows and macOS bundles (installer/tlstudio.spec) take .ico and .icns; Pillow writes both
    from PIL import Image

    largest = Image.open(ICONS / f"tlstudio-{SIZES[-1]}.png")
    largest.save(ICONS / "tlstudio.ico", sizes=[(s, s) for s in SIZES if s <= 256])
    largest.save(ICONS / "tlstudio.icns")
    print(f"rendered {len(SIZES)} sizes, .ico and .icns into {ICONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
