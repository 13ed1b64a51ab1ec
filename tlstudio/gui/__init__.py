"""The desktop app: a thin PySide6 layer over ``tlstudio.core``; it holds no ML logic."""
