"""The names a script may use, and the check of every name an expression or action reads.

Readings and modules come from each unit's Birth; variables and signals from
the script. A unit whose files could not be read has no Birth: its names are
not checked further (its files' own problems are reported instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hub.script.errors import ExpressionError
from hub.script.expr import TIME, ParsedExpression
from hub.script.functions import FUNCTIONS
from hub.script.lexer import KEYWORDS
from hub.script.model import Position, Value
from hub.script.nodes import Type, type_of
from hub.script.reader import Reader, did_you_mean
from lecis.wire.birth import Birth, BirthModule

RESERVED = frozenset({TIME, *KEYWORDS, *FUNCTIONS, "null", "none"})
_TYPE_WORDS: dict[Type, str] = {"number": "a number", "boolean": "a condition (true or false)",
                                "string": "a string", "any": "a value"}


@dataclass
class Symbols:
    births: Mapping[str, Birth]
    units: frozenset[str]  # every unit the script declares, with or without a Birth
    variables: dict[str, Value] = field(default_factory=dict)
    signals: set[str] = field(default_factory=set)

    def unknown_unit(self, unit: str) -> str | None:
        """Why `unit` cannot be used, or None when it can (or its files failed: not reported twice)."""
        if unit in self.units:
            return None
        return f"unknown unit {unit!r}" + did_you_mean(unit, self.units, "units of this script (units:)")

    def module(self, reader: Reader, unit: str, module: str, at: Position) -> BirthModule | None:
        """The module as its unit describes it; a problem at `at` when there is no such module."""
        why = self.unknown_unit(unit)
        if why is not None:
            reader.fail_at(at, why)
            return None
        birth = self.births.get(unit)
        if birth is None:
            return None
        described = birth.modules.get(module)
        if described is None:
            reader.fail_at(at, f"unit {unit} has no module {module!r}"
                           + did_you_mean(module, birth.modules, f"modules of {unit}"))
        return described

    def check_name(self, reader: Reader, name: str, at: Position, *,
                   reading_only: bool = False) -> Type | None:
        """The type of `name` where an expression reads it; a problem at `at` when it is unknown."""
        if "/" in name:
            unit, rest = name.split("/", 1)
            module, _, reading = rest.partition(".")
            if unit not in self.units and unit in self.variables | dict.fromkeys(self.signals):
                reader.fail_at(at, f"{name!r} reads as a reading name (no spaces around /); to divide, "
                                   f"write {unit} / {rest}")
                return None
            described = self.module(reader, unit, module, at)
            if described is None:
                return "number" if unit in self.units and unit not in self.births else None
            names = [r.name for r in described.readings]
            if not reading:
                shown = ", ".join(f"{name}.{r}" for r in names)
                suggestion = f"; name one of its readings: {shown}" if names \
                    else f"; {unit}/{module} has no readings ({described.kind})"
                reader.fail_at(at, f"{name} is a module, not a reading{suggestion}")
                return None
            if reading not in names:
                reader.fail_at(at, f"module {unit}/{module} has no reading {reading!r}"
                               + did_you_mean(reading, names, f"readings of {unit}/{module}"))
                return None
            return "number"
        if name in self.signals:
            return "number"
        if name in self.variables and not reading_only:
            return type_of(self.variables[name])
        known = set(self.signals) | (set() if reading_only else set(self.variables))
        what = "a reading (unit/module.reading) or a signal" if reading_only \
            else "a reading (unit/module.reading), a signal or a variable"
        reader.fail_at(at, f"unknown name {name!r}; expected {what}" + did_you_mean(name, known, "names"))
        return None

    def check_expression(self, reader: Reader, expr: ParsedExpression, want: Type | None) -> bool:
        """Every name known and the types fitting `want`; problems go to the reader. True when sound."""
        ok = True
        types: dict[str, Type] = {}
        for name in sorted(expr.names, key=lambda n: expr.where(n).column):
            found = self.check_name(reader, name, expr.where(name))
            if found is None:
                ok = False
            else:
                types[name] = found
        for unit in sorted(expr.units):
            why = self.unknown_unit(unit)
            if why is not None:
                offset = expr.text.find(unit)
                reader.fail_at(expr.at(max(offset, 0)), why)
                ok = False
        if not ok:
            return False
        try:
            got = expr.infer(lambda name: types.get(name, "any"))
        except ExpressionError as exc:
            reader.problems.append(exc.problem)
            return False
        if want is not None and got not in (want, "any"):
            reader.fail_at(expr.position, f"expected {_TYPE_WORDS[want]}, but {expr.text!r} gives "
                                          f"{_TYPE_WORDS[got]}")
            return False
        return True

