"""Bounds a YAML text must keep before it is built into values: size, nesting, alias expansion.

A unit.yaml or DCD is a few kB of hand-written keys. Far beyond the bounds
below lies a mistake or an attack: eleven lines of aliases ("billion laughs")
expand to billions of values, and a few kB of `[` nest deeper than Python
can recurse. The check reads the parser's events, which come without
recursion and without expanding aliases, so it is quick and small whatever
the text, and it runs before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    MappingStartEvent,
    ScalarEvent,
)

from lecis.errors import ConfigError, ConfigProblem

MAX_BYTES = 1_000_000  # of the file; the largest DCD we know is under 10 kB
MAX_DEPTH = 32  # nested mappings and lists; a DCD needs 5 (commands.cal.params.point.min)
MAX_VALUES = 10_000  # after expanding aliases, each use counted in full; a DCD has a few hundred
MAX_INT = 2**63 - 1  # whole numbers beyond 64 bits are typing slips, and overflow float()
MAX_INT_CHARS = 40  # longer integer text is refused before it is converted
MAX_KEY_CHARS = 100  # keys are names; a longer one would fill every message that quotes it

YPath = tuple[str | int, ...]


def field_name(path: YPath) -> str:
    """`("commands", "cal", "params")` -> `commands.cal.params`; list items as `modules[2]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass
class _Open:
    """A mapping or list whose end event has not come yet."""

    anchor: str | None
    is_mapping: bool
    values: int = 1  # itself plus everything inside, aliases expanded
    height: int = 1  # levels of nesting it holds, itself included
    items: int = 0  # nodes read inside so far, keys included
    key: str = "?"  # the last key read, in a mapping

    def label(self) -> str | int | None:
        """Key or index of the value being read now; None while a mapping's key is being read."""
        if not self.is_mapping:
            return self.items
        return self.key if self.items % 2 == 1 else None

    def add(self, values: int, height: int, scalar: str | None) -> None:
        self.values += values
        self.height = max(self.height, height + 1)
        if self.is_mapping and self.items % 2 == 0:
            self.key = "?" if scalar is None else scalar[:MAX_KEY_CHARS]
        self.items += 1


def check_events(text: str, source: str) -> None:
    """Raise ConfigError when `text` nests or expands beyond the bounds; syntax errors pass through."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, height)
    stack: list[_Open] = []
    expanded = 0

    def refuse(event: Event, message: str) -> ConfigError:
        line = None if event.start_mark is None else event.start_mark.line + 1
        labels = [label for label in (item.label() for item in stack) if label is not None]
        name = field_name(tuple(labels[:6])) + ("..." if len(labels) > 6 else "")
        return ConfigError([ConfigProblem(source, line, name or None, message)])

    def add(values: int, height: int, scalar: str | None = None) -> None:
        if stack:
            stack[-1].add(values, height, scalar)

    for event in YAML(typ="rt").parse(text):
        if isinstance(event, CollectionStartEvent):
            expanded += 1
            if len(stack) >= MAX_DEPTH:
                raise refuse(event, f"nested more than {MAX_DEPTH} levels deep; a unit config or DCD "
                                    "needs a handful")
            stack.append(_Open(event.anchor, isinstance(event, MappingStartEvent)))
        elif isinstance(event, CollectionEndEvent):
            done = stack.pop()
            if done.anchor is not None:
                anchors[done.anchor] = (done.values, done.height)
            add(done.values, done.height)
        elif isinstance(event, ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
            add(1, 0, str(event.value))
        elif isinstance(event, AliasEvent):
            name = str(event.anchor)
            if any(item.anchor == name for item in stack):
                raise refuse(event, f"the alias *{name} is used inside the value it names, which "
                                    "would repeat forever; write the value out")
            values, height = anchors.get(name, (1, 0))  # an unknown alias is the composer's to report
            expanded += values
            if expanded > MAX_VALUES:
                raise refuse(event, f"aliases make this file more than {MAX_VALUES} values long "
                                    f"(*{name} repeats {values}); write the values out")
            if len(stack) + height > MAX_DEPTH:
                raise refuse(event, f"the alias *{name} nests values more than {MAX_DEPTH} levels deep")
            add(values, height)
        if expanded > MAX_VALUES:
            raise refuse(event, f"more than {MAX_VALUES} values; a unit config or DCD needs a few hundred")
