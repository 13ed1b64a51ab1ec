"""`tlstudio gui`: open the desktop app."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    """Register ``gui``."""
    p = sub.add_parser("gui", help="open the desktop app (the same as `tlstudio` without a command)")
    p.add_argument("project", nargs="?", type=Path, help="a project file to open")


def run(args: argparse.Namespace) -> int:
    from tlstudio.gui.app import main as gui_main

    return gui_main([str(args.project)] if args.project else [])
