"""Every CLI command has one shape: its module declares ``add_parser(sub)`` and ``run(args)``, the parser
is the list ``COMMANDS`` and a loop, and no command module reaches back into the parser (the defaults
`train` compares given options with come from ``core.settings``, not from a rebuilt parser)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from tlstudio.cli import parser as cli_parser
from tlstudio.cli.options import option_defaults
from tlstudio.cli.train import TRAIN_ONLY_DEFAULTS

CLI = Path(cli_parser.__file__).parent


def subcommands():
    """``{name: subparser}`` of the built tree."""
    tree = cli_parser.build_parser()
    return tree._subparsers._group_actions[0].choices


@pytest.mark.parametrize("module", cli_parser.COMMANDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_each_command_module_declares_add_parser_and_run(module):
    assert list(inspect.signature(module.add_parser).parameters) == ["sub"]
    assert list(inspect.signature(module.run).parameters) == ["args"]
    assert module.__doc__ and module.__doc__.strip(), "a module opens with its sentence"


def test_every_subcommand_runs_its_own_modules_run():
    commands = subcommands()
    assert len(commands) == len(cli_parser.COMMANDS)  # one command per module
    runs = {module.run for module in cli_parser.COMMANDS}
    assert {p.get_default("handler") for p in commands.values()} == runs


def test_commands_are_declared_only_in_their_modules_and_all_are_listed():
    declaring = {
        path.stem for path in CLI.glob("*.py") if "sub.add_parser(" in path.read_text(encoding="utf-8")
    }
    listed = {module.__name__.rsplit(".", 1)[-1] for module in cli_parser.COMMANDS}
    assert declaring == listed  # parser.py declares none itself; no module is left out of the list


def test_no_command_module_imports_the_parser():
    for module in cli_parser.COMMANDS:
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert "tlstudio.cli.parser" not in imported, module.__name__
        assert not any(
            isinstance(node, ast.ImportFrom)
            and node.module == "tlstudio.cli"
            and "parser" in {a.name for a in node.names}
            for node in ast.walk(tree)
        ), module.__name__


def test_the_defaults_train_compares_with_are_the_parsers_own():
    train = subcommands()["train"]
    parsed = vars(train.parse_args([]))
    positional_or_place = {"data_dir", "project", "resume", "out", "backbone", "handler", "json"}
    expected = {**option_defaults(), **TRAIN_ONLY_DEFAULTS}
    assert set(parsed) - positional_or_place == set(expected)  # every option is compared, none forgotten
    assert {k: parsed[k] for k in expected} == expected


def test_given_options_names_what_differs_from_the_settings_defaults():
    from tlstudio.cli.train import given_options

    train = subcommands()["train"]
    args = train.parse_args(["--project", "p.json", "--epochs", "3", "--no-flip", "--folds", "2"])
    assert given_options(args, set()) == ["--epochs", "--folds", "--no-flip"]
    args = train.parse_args(["--project", "p.json", "--strategy", "mirrored", "--overwrite", "--seed", "42"])
    assert given_options(args, {"strategy", "overwrite", "device"}) == []  # --seed 42 is the default
    assert given_options(train.parse_args(["--resume", "r", "--seed", "7"]), set()) == ["--seed"]
