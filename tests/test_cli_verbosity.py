"""`-v` / `-q` set how much of the ``tlstudio`` logger reaches stderr: warnings by default, INFO with
-v, DEBUG with -vv, errors only with -q; each call of the CLI sets it anew."""

from __future__ import annotations

import logging

import pytest

from tlstudio.cli import main

LOGGER = logging.getLogger("tlstudio.core.some_module")  # any module's logger in the tree


def say_everything(args):
    for level in ("debug", "info", "warning", "error"):
        getattr(LOGGER, level)("%s line", level)
    return 0


@pytest.fixture
def noisy_runs(monkeypatch):
    """`tlstudio runs` made to log one line at every level (the real parser, -v/-q and handler set-up)."""
    from tlstudio.cli import runs

    monkeypatch.setattr(runs, "run", say_everything)
    yield
    logging.getLogger("tlstudio").setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        ([], ["warning", "error"]),
        (["-v"], ["info", "warning", "error"]),
        (["-vv"], ["debug", "info", "warning", "error"]),
        (["-q"], ["error"]),
        (["--quiet"], ["error"]),
    ],
)
def test_verbosity_sets_the_library_level(flags, shown, noisy_runs, tmp_path, capsys):
    assert main([*flags, "runs", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.endswith(" line")]
    assert [line.split()[-2] for line in lines] == shown
    assert lines[0].startswith(f"tlstudio {shown[0].upper()} tlstudio.core.some_module: ")


def test_v_and_q_together_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-v", "-q", "runs", "."])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_two_calls_leave_one_handler(noisy_runs, tmp_path, capsys):
    main(["-v", "runs", str(tmp_path)])
    main(["-v", "runs", str(tmp_path)])
    assert capsys.readouterr().err.count("info line") == 2  # once per call, not twice in the second


def test_the_handler_writes_to_stderr_as_it_is_now(noisy_runs, tmp_path, capsys, monkeypatch):
    import io

    main(["runs", str(tmp_path)])
    capsys.readouterr()
    later = io.StringIO()
    monkeypatch.setattr("sys.stderr", later)  # a stream replaced after the CLI set logging up
    LOGGER.error("after")
    assert "tlstudio ERROR tlstudio.core.some_module: after" in later.getvalue()
