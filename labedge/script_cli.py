"""`labedge script check FILE [--units DIR]`: every problem of a script, with no unit online.

`labedge script apply` (hub.cli.add_apply_parser) is registered beside it by
`add_script_commands`, the one place that fills the `script` subcommand set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_VALID, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


def add_script_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    script = subparsers.add_parser(
        "script", help="check an experiment script, or send a new version to the running hub",
        description="Experiment scripts (docs/scripts.md): `check` one on this machine, `apply` a new "
                    "version to the running hub.")
    script_sub = script.add_subparsers(dest="script_command", required=True, metavar="SUBCOMMAND")
    add_script_commands(script_sub)


def add_script_commands(script_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Every `labedge script ...` subcommand."""
    add_check_parser(script_sub)
    try:
        from hub.cli import add_apply_parser
    except ImportError as exc:  # `script apply` ships with the hub
        if exc.name not in ("hub.cli", None):
            raise
    else:
        add_apply_parser(script_sub)


def add_check_parser(script_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = script_sub.add_parser(
        "check", help="check a script against its units' files; every problem with file:line:column",
        description="Check FILE: its syntax, expressions, and every unit, module, reading, command and "
                    "argument against the unit configs or DCD folders the script names (relative to it), "
                    "so no unit needs to be online. Every problem is printed as file:line:column: message.",
        epilog="exit status: 0 valid, 1 problems found, 2 the file is not a usable script "
               "(unreadable, not UTF-8, not YAML).")
    check.add_argument("file", type=Path, metavar="FILE", help="the script (YAML)")
    check.add_argument("--units", type=Path, default=None, metavar="DIR",
                       help="look up each unit as DIR/<unit>.yaml or DIR/<unit>/ (DCD folder) instead of the "
                            "paths the script gives")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    from hub.script.errors import ScriptError
    from hub.script.loader import ScriptFileError, load_script

    if args.units is not None and not args.units.is_dir():
        print(f"labedge script check: --units {args.units}: not a folder", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        script = load_script(args.file, units_dir=args.units)
    except ScriptError as exc:
        for problem in exc.problems:
            print(problem)
        unusable = isinstance(exc, ScriptFileError)
        count = len(exc.problems)
        print(f"{args.file}: {'not a usable script' if unusable else 'invalid'}: {count} "
              f"problem{'s' if count != 1 else ''}; nothing would be started", file=sys.stderr)
        return EXIT_UNUSABLE if unusable else EXIT_INVALID
    parts = [f"{len(script.units)} unit{'s' if len(script.units) != 1 else ''}"]
    for what, items in (("task", script.tasks), ("loop", script.loops), ("signal", script.signals),
                        ("guard", script.guards)):
        if items:
            parts.append(f"{len(items)} {what}{'s' if len(items) != 1 else ''}")
    print(f"{args.file}: valid: experiment {script.experiment!r}, {', '.join(parts)}")
    return EXIT_VALID
