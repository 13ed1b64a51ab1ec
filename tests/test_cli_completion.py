"""`tlstudio completion SHELL`: the script is made from the argparse tree, and bash (zsh, fish where they
are installed) completes commands, options, choices and paths with it."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys

import pytest
import shtab

from tlstudio.cli import completion
from tlstudio.cli import parser as cli_parser


def script(shell: str, capsys) -> str:
    assert cli_parser.main(["completion", shell]) == 0
    return capsys.readouterr().out


def command_names() -> set[str]:
    return set(cli_parser.build_parser()._subparsers._group_actions[0].choices)


def bash_completes(script_file, words: list[str]) -> list[str]:
    """What bash offers for the last of ``words`` (as Tab would), with the generated script loaded."""
    line = " ".join(words)
    quoted = " ".join(shlex.quote(w) for w in words)
    code = "\n".join(
        [
            f"source {shlex.quote(str(script_file))}",
            "spec=$(complete -p tlstudio)",  # e.g. complete -o filenames -F _shtab_tlstudio tlstudio
            'function=$(sed -E "s/.* -F ([^ ]+) .*/\\1/" <<< "$spec")',
            f"COMP_WORDS=({quoted})",
            f"COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(line)}",
            "COMP_POINT=${#COMP_LINE}",
            f'"$function" tlstudio {shlex.quote(words[-1])} {shlex.quote(words[-2])}',
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    done = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [w.strip() for w in done.stdout.splitlines() if w.strip()]


@pytest.fixture
def bash_script(tmp_path, capsys):
    path = tmp_path / "tlstudio.bash"
    path.write_text(script("bash", capsys), encoding="utf-8")
    return path


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_bash_completes_every_command_and_only_those(bash_script):
    assert set(bash_completes(bash_script, ["tlstudio", ""])) >= command_names()
    assert bash_completes(bash_script, ["tlstudio", "tr"]) == ["train"]
    assert sorted(bash_completes(bash_script, ["tlstudio", "co"])) == ["compare", "completion"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_bash_completes_options_their_choices_and_paths(bash_script, tmp_path):
    assert sorted(bash_completes(bash_script, ["tlstudio", "train", "--fine-tune-"])) == [
        "--fine-tune-blocks",
        "--fine-tune-epochs",
        "--fine-tune-lr-decay",
    ]
    assert bash_completes(bash_script, ["tlstudio", "export", "run", "--format", "tfl"]) == ["tflite"]
    assert bash_completes(bash_script, ["tlstudio", "train", "x", "--optimizer", "adam"]) == ["adam", "adamw"]
    (tmp_path / "model-one").mkdir()
    found = bash_completes(bash_script, ["tlstudio", "predict", str(tmp_path / "model-o")])
    assert found == [str(tmp_path / "model-one")]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_the_other_shells_read_their_script(shell, tmp_path, capsys):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} here")
    path = tmp_path / f"tlstudio.{shell}"
    path.write_text(script(shell, capsys), encoding="utf-8")
    check = [shell, "-n", str(path)] if shell == "zsh" else ["fish", "--no-execute", str(path)]
    done = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert all(name in path.read_text(encoding="utf-8") for name in command_names())


def test_every_shell_is_shtabs_and_json_says_where_it_goes(capsys):
    assert set(completion.SHELLS) <= set(shtab.SUPPORTED_SHELLS)
    assert set(completion.INSTALL) == set(completion.SHELLS)
    assert cli_parser.main(["completion", "fish", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["shell"] == "fish" and found["install"] == completion.INSTALL["fish"]
    assert "complete -c tlstudio" in found["script"]


def test_an_unknown_shell_exits_2_with_the_choices(capsys):
    with pytest.raises(SystemExit) as done:
        cli_parser.main(["completion", "ksh"])
    assert done.value.code == 2
    assert "choose from 'bash', 'zsh'" in capsys.readouterr().err


def test_help_does_not_load_shtab():
    code = (
        "import contextlib, io, sys\nfrom tlstudio.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['completion', '--help'])\nprint('shtab' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False"
