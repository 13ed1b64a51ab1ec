"""`tlstudio gui`: open the desktop app."""

from __future__ import annotations

import argparse


def run_gui(args: argparse.Namespace) -> int:
    from tlstudio.gui.app import main as gui_main

    return gui_main([str(args.project)] if args.project else [])
