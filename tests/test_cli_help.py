"""The CLI explains itself: a version, and a help line on every subcommand and option."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from labedge.cli import build_parser, main
from lecis.version import software_version as version


def walk(parser: argparse.ArgumentParser, path: str = "labedge") -> Iterator[tuple[str, argparse.Action]]:
    """Every action of every parser in the tree, named by its command path."""
    for action in parser._actions:
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")


def subcommands(action: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, str | None]:
    """Subcommand name -> its help line (None when it has none)."""
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    return {name: helps.get(name) for name in action.choices}


def test_every_subcommand_and_option_has_a_help_line() -> None:
    missing = []
    seen_commands = set()
    for path, action in walk(build_parser()):
        if isinstance(action, argparse._SubParsersAction):
            for name, text in subcommands(action).items():
                seen_commands.add(f"{path} {name}")
                if not text or text == argparse.SUPPRESS:
                    missing.append(f"{path} {name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == [], f"no help line: {missing}"
    # The walk really reached the nested commands.
    assert {"labedge edge", "labedge edge run", "labedge cmd", "labedge lab", "labedge sim ezo",
            "labedge broker", "labedge watch"} <= seen_commands


def test_the_walk_notices_a_missing_help() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    quiet = sub.add_parser("quiet")
    quiet.add_argument("--loud")
    found = [(path, action.dest) for path, action in walk(parser)
             if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert found == [("labedge quiet", "loud")]
    assert subcommands(sub) == {"quiet": None}


def test_version_is_printed_by_the_installed_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"labedge {version()}\n"
    assert version() != "unknown"
    result = subprocess.run([sys.executable, "-m", "labedge", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("labedge 0.")


@pytest.mark.parametrize("argv", [["--help"], ["edge", "run", "--help"], ["cmd", "--help"],
                                  ["lab", "--help"]])
def test_help_pages_print(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: labedge")
    if argv[0] == "cmd":
        assert "exit status: 0 done, 1 failed, 2 bad arguments, 3 rejected" in out
    if argv[0] == "edge":
        assert "--no-port-check" in out and "{lgpio,mock}" in out
