"""The unit's command checks that need no unit: known command, then arguments.

`edge.slm.Module` checks a command in the contract's order (known command,
lease, state, arguments). The two checks that depend only on what a module
declares live here, so a controller (the hub) can check a command against a
unit's `$birth`, without importing `edge`, and be refused with the same kind,
param and message the unit would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lecis.dcd import CommandSpec
from lecis.errors import CommandInvalid, CommandUnknown
from lecis.states import STANDARD_COMMANDS
from lecis.wire.birth import Birth


@dataclass(frozen=True)
class CheckedCommand:
    """A command that passed: its canonical name, whether it is a standard LECIS one, its checked args."""

    name: str
    standard: bool
    spec: CommandSpec | None = None
    args: dict[str, Any] = field(default_factory=dict)


def standard_name(cmd: str) -> str | None:
    """`INIT` for `init` or `INIT`; None when `cmd` is no standard LECIS command."""
    upper = cmd.upper()
    return upper if upper in STANDARD_COMMANDS else None


def resolve_command(module: str, commands: Sequence[CommandSpec], cmd: str) -> CheckedCommand:
    """The first check: a standard command or one the module declares, else CommandUnknown."""
    standard = standard_name(cmd)
    if standard is not None:
        return CheckedCommand(standard, True)
    spec = next((c for c in commands if c.name == cmd), None)
    if spec is None:
        known = ", ".join(sorted(c.name for c in commands)) or "none"
        raise CommandUnknown(
            f"{module} has no command {cmd!r} (device commands: {known}; "
            f"standard: {', '.join(STANDARD_COMMANDS)})"
        )
    return CheckedCommand(cmd, False, spec)


def check_arguments(resolved: CheckedCommand, args: dict[str, Any]) -> CheckedCommand:
    """The last check: arguments against the schema, defaults filled; CommandInvalid naming the param."""
    if resolved.standard or resolved.spec is None:
        if args:
            first = sorted(args)[0]
            raise CommandInvalid(f"{resolved.name} takes no arguments, got {first!r}", first)
        return resolved
    return CheckedCommand(resolved.name, False, resolved.spec, resolved.spec.validate(args))


def check_against_birth(birth: Birth, module: str, cmd: str, args: dict[str, Any]) -> CheckedCommand:
    """Check a module command as `birth`'s unit would (lease and state aside: only the unit knows them)."""
    described = birth.modules.get(module)
    if described is None:
        known = ", ".join(sorted(birth.modules))
        raise CommandUnknown(f"unit {birth.unit} has no module {module!r} (modules: {known})")
    return check_arguments(resolve_command(module, described.commands, cmd), args)
