"""The argparse tree: the top-level options and one subcommand per module of ``COMMANDS``, each of
which declares ``add_parser(sub)`` and ``run(args)``. Heavy modules (TensorFlow, Pillow, Qt, numpy) are
imported inside commands, so `--help` stays fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tlstudio import __version__
from tlstudio.cli import (
    auto,
    backbones,
    compare,
    completion,
    demo,
    devices,
    distill,
    evaluate,
    export,
    gui,
    inspect,
    lr_find,
    predict,
    rank,
    runs,
    suggest,
    sweep,
    train,
    weights,
)
from tlstudio.cli.desktop import run_desktop_entry
from tlstudio.cli.verbosity import add_verbosity_options, configure, level_of

# every command, in the order `tlstudio --help` lists them (a new command: its module, one line here)
COMMANDS = [
    inspect,
    backbones,
    weights,
    devices,
    train,
    compare,
    runs,
    evaluate,
    predict,
    export,
    distill,
    suggest,
    rank,
    auto,
    sweep,
    lr_find,
    gui,
    demo,
    completion,
]


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand; each one's ``handler`` is its module's ``run``."""
    parser = argparse.ArgumentParser(
        prog="tlstudio",
        description="TL Studio: transfer learning on images with Keras. "
        "Without a command it opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"tlstudio {__version__}")
    add_verbosity_options(parser)
    desktop = parser.add_mutually_exclusive_group()
    desktop.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add TL Studio to this user's application menu, with its icon and *.tlstudio.json files "
        "(Linux desktops; $XDG_DATA_HOME, by default ~/.local/share)",
    )
    desktop.add_argument(
        "--uninstall-desktop-entry",
        action="store_true",
        help="remove what --install-desktop-entry added (projects and runs are kept)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        before = set(sub.choices)
        command.add_parser(sub)
        for name in set(sub.choices) - before:
            sub.choices[name].set_defaults(handler=command.run)
    parser.set_defaults(tree=parser)  # what `completion` completes (no command module imports this one)
    return parser


# what the user's own paths cause (exit 2, bad input); other OSErrors (a full disk) exit 1
PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(level_of(args.verbose, args.quiet)).debug("command %s: %s", args.command, vars(args))
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        return run_desktop_entry(install=args.install_desktop_entry)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("tlstudio: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tlstudio evaluate ... | head`
        sys.stderr.close()
        return 0
    except OSError as err:  # a path given that cannot be read or written: one line, not a traceback
        where = f": {err.filename}" if err.filename else ""
        print(f"tlstudio {args.command}: {err.strerror or err}{where}", file=sys.stderr)
        return 2 if isinstance(err, PATH_ERRORS) else 1
