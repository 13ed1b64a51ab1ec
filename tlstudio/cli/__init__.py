"""Command-line front door: one module per command, `parser` ties them together."""

from tlstudio.cli.demo import demo_backbone
from tlstudio.cli.options import settings_from_args
from tlstudio.cli.parser import build_parser, main

__all__ = ["build_parser", "demo_backbone", "main", "settings_from_args"]
