"""``machaon``'s one error handler: one line, one format, documented exit codes."""

from __future__ import annotations

import argparse

import pytest

from machaon.cli import main as cli_main
from machaon.cli._common import command
from machaon.errors import HardwareError, InputError, UsageError


def _run_raising(monkeypatch, exc: BaseException) -> int:
    """``machaon teleop profiles`` with its handler replaced by one that raises ``exc``."""
    from machaon.cli import teleop

    def handler(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(teleop, "_profiles", command(handler))
    return cli_main.main(["teleop", "profiles"])


@pytest.mark.parametrize(("exc", "code"), [
    (UsageError("--rate-hz must be > 0"), 2),
    (InputError("q: contains NaN or Inf"), 2),
    (HardwareError("no servo answered"), 1),
    (KeyboardInterrupt(), 130),
])
def test_errors_are_one_line_with_their_exit_code(monkeypatch, capsys, exc, code):
    assert _run_raising(monkeypatch, exc) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == (f"machaon: error: {exc}\n" if code != 130 else "machaon: interrupted\n")


def test_a_bug_is_not_swallowed(monkeypatch):
    with pytest.raises(ZeroDivisionError):
        _run_raising(monkeypatch, ZeroDivisionError("bug"))


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for line in ("0    success", "1    failure", "2    bad input", "130  interrupted", "machaon: error: "):
        assert line in out


def _handlers(parser: argparse.ArgumentParser) -> list[tuple[str, object]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if "func" in sub._defaults:
                    out.append((name, sub._defaults["func"]))
                out += _handlers(sub)
    return out


def test_every_subcommand_goes_through_the_one_error_handler():
    handlers = _handlers(cli_main.build_parser())
    assert len(handlers) >= 20
    assert [n for n, f in handlers if not getattr(f, "machaon_command", False)] == []


def test_subcommand_errors_use_the_one_format(tmp_path, capsys):
    assert cli_main.main(["log", "summary", str(tmp_path / "missing.mcap")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("machaon: error: cannot read ") and err.count("\n") == 1
    assert cli_main.main(["kin", "fk", "--q-deg", "0", "0"]) == 2
    assert capsys.readouterr().err.startswith("machaon: error: --q-deg needs 6 values")
