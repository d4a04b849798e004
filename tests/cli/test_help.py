"""``machaon --help`` tells the truth about the commands: every subcommand the parser knows is listed
with a one-line description, and a command group's description names each of its subcommands (so a
subcommand added later cannot hide behind an old description, as ``log recover`` once did)."""

from __future__ import annotations

import argparse
import re

import pytest

from machaon.cli.main import build_parser, main


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """{name: (one-line help, parser)} of the parser's subcommands ({} for a leaf command)."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                out[name] = (helps.get(name) or "", sub)
    return out


def _listed(help_text: str, name: str) -> str:
    """The description next to ``name`` in a help text's subcommand list (joined over wrapped lines)."""
    m = re.search(rf"^ {{4}}{re.escape(name)}(?: +(.*)|\n +(\S.*))\n((?: {{6,}}\S.*\n)*)", help_text, re.M)
    assert m, f"{name!r} is not listed:\n{help_text}"
    first = m.group(1) or m.group(2)
    return " ".join([first, *(line.strip() for line in m.group(3).splitlines())])


def _same(listed: str, help_line: str) -> bool:
    """Equal but for where argparse wrapped the line (it also breaks after a hyphen)."""
    return re.sub(r"\s", "", listed) == re.sub(r"\s", "", help_line)


def test_every_command_is_in_the_top_level_help_with_its_description(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    commands = _subcommands(build_parser())
    assert {"kin", "sim", "log", "hw", "bench", "ortho", "exo", "teleop", "demo"} <= set(commands)
    for name, (help_line, _) in commands.items():
        assert len(help_line.split()) >= 3, f"{name}: no real description"
        assert _same(_listed(text, name), help_line), name


def test_a_groups_description_names_each_of_its_subcommands():
    for name, (help_line, parser) in _subcommands(build_parser()).items():
        subs = _subcommands(parser)
        if not subs:
            continue
        text = parser.format_help()
        for sub, (sub_help, _) in subs.items():
            assert re.search(rf"(?<![\w-]){re.escape(sub)}(?![\w-])", help_line), \
                f"`machaon {name}`'s description does not name `{sub}`: {help_line!r}"
            assert len(sub_help.split()) >= 3, f"{name} {sub}: no real description"
            assert _same(_listed(text, sub), sub_help), (name, sub)
