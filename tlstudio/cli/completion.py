"""`tlstudio completion SHELL`: a shell completion script made from the argparse tree (shtab)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tlstudio.cli.common import fail

SHELLS = ("bash", "zsh", "fish", "tcsh", "powershell")  # (shtab's; a test keeps them so)

# where each shell looks for a completion script of its own (what `--json` and the help say)
INSTALL = {
    "bash": "~/.local/share/bash-completion/completions/tlstudio",
    "zsh": "a folder on $fpath, as _tlstudio (then: autoload -U compinit && compinit)",
    "fish": "~/.config/fish/completions/tlstudio.fish",
    "tcsh": "a file sourced from ~/.tcshrc",
    "powershell": "a file dot-sourced from $PROFILE",
}


def add_parser(sub) -> None:
    """Register ``completion``."""
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish, tcsh, powershell)",
        description="Print a completion script for SHELL, made from this version's commands and "
        "options: commands, options, their choices (formats, optimizers…) and file paths complete "
        'with Tab. Try it: eval "$(tlstudio completion bash)"; keep it: '
        + "; ".join(f"{shell}: {where}" for shell, where in INSTALL.items()),
    )
    p.add_argument("shell", metavar="SHELL", choices=SHELLS, help=f"one of {', '.join(SHELLS)}")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object: shell, where to install it, script"
    )


def run(args: argparse.Namespace) -> int:
    tree = getattr(args, "tree", None)  # the whole argparse tree (``parser.build_parser`` sets it)
    if not isinstance(tree, argparse.ArgumentParser):
        return fail("completion", "no command tree to complete (run it as `tlstudio completion SHELL`)", 2)
    import shtab

    mark_paths(tree)
    script = shtab.complete(tree, shell=args.shell)
    if args.json:
        print(json.dumps({"shell": args.shell, "install": INSTALL[args.shell], "script": script}))
    else:
        print(script)
    return 0


def mark_paths(parser: argparse.ArgumentParser) -> None:
    """Give every argument that takes a path (``type=Path``) shtab's file completion, in every command."""
    import shtab

    for action in parser._actions:
        if action.type is Path and not hasattr(action, "complete"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]  # (shtab reads this attribute)
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # (aliases: one parser, named twice)
                mark_paths(child)
