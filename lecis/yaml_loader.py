"""Human-edited YAML: plain values, the line of every key, and typed reads that collect problems.

The YAML 1.2 core schema applies (ruamel.yaml): only `true` and `false` are
booleans, so `on`, `off`, `yes` and `no` stay strings. Nothing here stops at
the first problem: every one found becomes a ConfigProblem naming the file,
the line and the dotted field (`commands.cal_mid.params.point.min`). Hostile
text (huge files, alias bombs, deep nesting, 400-digit numbers, control
characters) is refused the same way, quickly and in bounded memory
(`lecis.yaml_limits`): nothing here raises anything but ConfigError.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from lecis.errors import ConfigError, ConfigProblem
from lecis.yaml_limits import MAX_BYTES, MAX_INT, MAX_INT_CHARS, MAX_KEY_CHARS, check_events
from lecis.yaml_limits import YPath as YPath
from lecis.yaml_limits import field_name as field_name

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + name for name in ("int", "float", "bool", "null", "timestamp"))
_TOO_LARGE = "number too large; whole numbers here are from -{0} to {0}"
F = TypeVar("F", float, None)
I = TypeVar("I", int, None)  # noqa: E741
S = TypeVar("S", str, None)


class Missing(enum.Enum):
    MISSING = "missing"


MISSING = Missing.MISSING


@dataclass
class YamlDoc:
    """A loaded file: plain values, the line (1-based) of every key and list item, and problems.

    `problems` are those found while loading that still leave a usable
    document (a duplicate key keeps its first value); `Fields` starts from them.
    `refused` holds the paths whose value was one of them and became None,
    so that a typed read does not report the same line a second time.
    `columns` holds the column (1-based) of every key and list item beside
    `lines`; `values` the (line, column) where every value starts: for a
    scalar its text's first character (inside its quotes; the first content
    line of a block scalar), so a reader of text inside a value can point at
    one character.
    """

    source: str
    data: Any
    lines: dict[YPath, int] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    refused: set[YPath] = field(default_factory=set)
    columns: dict[YPath, int] = field(default_factory=dict)
    values: dict[YPath, tuple[int, int]] = field(default_factory=dict)

    def line_of(self, path: YPath) -> int | None:
        """Line of `path`, or of its nearest existing parent when it is absent."""
        while path not in self.lines:
            if not path:
                return None
            path = path[:-1]
        return self.lines[path]

    def position_of(self, path: YPath) -> tuple[int, int] | None:
        """(line, column) of the key or list item `path`, or of its nearest existing parent."""
        while path not in self.lines:
            if not path:
                return None
            path = path[:-1]
        return self.lines[path], self.columns.get(path, 1)

    def value_position(self, path: YPath) -> tuple[int, int] | None:
        """(line, column) of the first character of the scalar at `path`; else where its key is."""
        return self.values.get(path) or self.position_of(path)

    def get(self, path: YPath) -> Any:
        """The value at `path`, or MISSING."""
        value = self.data
        for part in path:
            if isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value):
                value = value[part]
            elif isinstance(part, str) and isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return MISSING
        return value


def load_yaml(path: Path, what: str = "key: value lines") -> YamlDoc:
    """Read and parse a file whose top level must be a mapping; raises ConfigError."""
    source = str(path)
    try:
        if stat.S_ISFIFO(path.stat().st_mode) or stat.S_ISSOCK(path.stat().st_mode):
            # Opening a pipe waits for a writer, possibly forever.
            raise ConfigError([ConfigProblem(source, None, None, "cannot read the file: it is a pipe or "
                                             "socket, not a file")])
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)  # never more, whatever the file is (/dev/zero included)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(source, None, None, "file does not exist")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(source, None, None,
                                         f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_yaml_bytes(raw, source, what)


def parse_yaml_bytes(raw: bytes, source: str, what: str = "key: value lines") -> YamlDoc:
    """`parse_yaml` of a file's bytes, which must be UTF-8 and at most MAX_BYTES long (pure)."""
    if len(raw) > MAX_BYTES:
        raise ConfigError([ConfigProblem(source, None, None, f"cannot read the file: larger than "
                                         f"{MAX_BYTES // 1000} kB; a unit config or DCD is a few kB")])
    try:
        text = raw.decode("utf-8-sig")  # a leading BOM (Windows editors) is not content
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(source, line, None, f"cannot read the file: byte "
                                         f"0x{raw[exc.start]:02x} is not UTF-8 text; save the file "
                                         "as UTF-8")]) from None
    return parse_yaml(text, source, what)


def parse_yaml(text: str, source: str, what: str = "key: value lines") -> YamlDoc:
    """Parse YAML text (pure); raises ConfigError when there is no mapping to check at all."""
    yaml = YAML(typ="rt")
    try:
        check_events(text, source)
        root = yaml.compose(text)
    except ReaderError as exc:
        at = int(exc.position)
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else 0
        at_line = text.count("\n", 0, at) + 1
        raise ConfigError([ConfigProblem(source, at_line, None, f"not valid YAML at column {column}: "
                                         f"character U+{code:04X} is not allowed (control characters "
                                         "and lone surrogates are not text)")]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        where = "" if mark is None else f" at column {mark.column + 1}"
        reason = "; ".join(" ".join(str(p).split()) for p in (exc.problem, exc.context) if p)
        raise ConfigError([ConfigProblem(source, line, None, f"not valid YAML{where}: {reason}")]) from None
    except YAMLError as exc:
        raise ConfigError([ConfigProblem(source, None, None,
                                         f"not valid YAML: {' '.join(str(exc).split())}")]) from None
    if root is None:
        raise ConfigError([ConfigProblem(source, None, None, f"the file is empty; expected {what}")])
    if not isinstance(root, MappingNode):
        raise ConfigError([ConfigProblem(source, root.start_mark.line + 1, None,
                                         f"expected {what} at the top level, got {_node_kind(root)}")])
    builder = _Builder(yaml, source, text)
    builder.lines[()] = root.start_mark.line + 1  # where a missing top-level key is reported
    builder.columns[()] = root.start_mark.column + 1
    data = builder.build(root, ())
    return YamlDoc(source, data, builder.lines, builder.problems, builder.refused, builder.columns,
                   builder.values)


def _node_kind(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    return "a mapping" if isinstance(node, MappingNode) else f"a single value {node.value!r}"


class _Builder:
    """Node tree -> plain values, recording lines, duplicate keys and unsupported tags."""

    def __init__(self, yaml: YAML, source: str, text: str = "") -> None:
        self.constructor = yaml.constructor
        self.source = source
        self.text_lines = text.split("\n")
        self.lines: dict[YPath, int] = {}
        self.columns: dict[YPath, int] = {}
        self.values: dict[YPath, tuple[int, int]] = {}
        self.problems: list[ConfigProblem] = []
        self.refused: set[YPath] = set()

    def problem(self, node: Node, path: YPath, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, node.start_mark.line + 1, field_name(path) or None,
                                           message))

    def refuse(self, node: Node, path: YPath, message: str) -> None:
        """A value that cannot be used: reported here, None in the document."""
        self.problem(node, path, message)
        self.refused.add(path)

    def build(self, node: Node, path: YPath) -> Any:
        tag = str(node.tag)
        if not isinstance(node, ScalarNode):
            self.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.key(key_node, path)
                if key is None:
                    continue
                if key in out:
                    self.problem(key_node, path + (key,),
                                 f"duplicate key {key!r} (first given at line {self.lines[path + (key,)]})")
                    continue
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                self.columns[path + (key,)] = key_node.start_mark.column + 1
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[path + (index,)] = item.start_mark.line + 1
                self.columns[path + (index,)] = item.start_mark.column + 1
                items.append(self.build(item, path + (index,)))
            return items
        self.values[path] = self.content_start(node)
        if tag == _CORE + "str":
            return str(node.value)
        if tag not in _SCALAR_TAGS:
            self.refuse(node, path, f"the YAML tag {tag} is not supported here; write a plain value")
            return None
        text = str(node.value)
        if tag == _CORE + "int" and len(text) > MAX_INT_CHARS:
            self.refuse(node, path, _TOO_LARGE.format(MAX_INT))
            return None
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (YAMLError, ValueError, TypeError, ArithmeticError, LookupError):  # ruamel on `!!int ""`
            shown = text if len(text) <= 40 else text[:37] + "..."
            self.refuse(node, path, f"{shown!r} is not a valid {tag.removeprefix(_CORE)}")
            return None
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                self.refuse(node, path, _TOO_LARGE.format(MAX_INT))
                return None
            return int(value)
        if isinstance(value, float):
            return float(value)
        return value  # a timestamp: type checks report it with the expected type

    def content_start(self, node: Node) -> tuple[int, int]:
        """(line, column), 1-based, of the first character of a scalar's text."""
        line, column = node.start_mark.line, node.start_mark.column
        style = getattr(node, "style", None)
        if style in ('"', "'"):
            return line + 1, column + 2  # after the opening quote
        if style in ("|", ">"):
            # The text starts on the first non-blank line after the indicator.
            for number in range(line + 1, len(self.text_lines)):
                content = self.text_lines[number]
                if content.strip():
                    return number + 1, len(content) - len(content.lstrip(" ")) + 1
        return line + 1, column + 1

    def key(self, node: Node, path: YPath) -> str | None:
        if str(node.tag) == _CORE + "merge":
            self.problem(node, path, "merge keys (<<) are not supported; write the keys out")
            return None
        if not isinstance(node, ScalarNode):
            self.problem(node, path, "a key must be a plain name, not a list or mapping")
            return None
        if len(str(node.value)) > MAX_KEY_CHARS:
            self.problem(node, path, f"a key of {len(str(node.value))} characters; keys here are names "
                                     f"of at most {MAX_KEY_CHARS}")
            return None
        return str(node.value)


def describe(value: Any) -> str:
    """A value as a user would recognise it in their file."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
    return str(value)


def _bounds(above: float | None, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    parts = [f"above {above:g}"] if above is not None else []
    parts += [f"at least {minimum:g}"] if minimum is not None else []
    parts += [f"at most {maximum:g}"] if maximum is not None else []
    return (" " + " and ".join(parts)) if parts else ""


class Fields:
    """Typed reads from a YamlDoc; a bad value becomes a problem and the read returns its default."""

    def __init__(self, doc: YamlDoc, problems: list[ConfigProblem] | None = None) -> None:
        self.doc = doc
        self.problems = list(doc.problems) if problems is None else problems

    def problem(self, path: YPath, message: str, line: int | None = None) -> None:
        if path in self.doc.refused:
            return  # its value was reported while loading; one problem per mistake
        where = self.doc.line_of(path) if line is None else line
        self.problems.append(ConfigProblem(self.doc.source, where, field_name(path) or None, message))

    def value(self, path: YPath) -> Any:
        return self.doc.get(path)

    def _absent(self, path: YPath, required: bool, expected: str) -> bool:
        """True when there is no value; a missing required one is a problem."""
        value = self.doc.get(path)
        if value is MISSING and required:
            self.problem(path, f"missing; expected {expected}")
        return value is MISSING

    def mapping(self, path: YPath, allowed: Collection[str] | None = None, *, required: bool = False,
                what: str = "a mapping") -> dict[str, Any] | None:
        """The mapping at `path` ({} for an empty one); unknown keys are problems, with a suggestion."""
        if self._absent(path, required, what):
            return None
        value = self.doc.get(path)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"expected {what}, got {describe(value)}")
            return None
        for key in value:
            if allowed is not None and key not in allowed:
                self.problem(path + (key,), unknown_key(key, allowed))
        return value

    def number(self, path: YPath, default: F, *, above: float | None = None, minimum: float | None = None,
               maximum: float | None = None, required: bool = False, nullable: bool = False) -> float | F:
        expected = f"a number{_bounds(above, minimum, maximum)}" + (" or null" if nullable else "")
        if self._absent(path, required, expected):
            return default
        value = self.doc.get(path)
        if value is None and nullable:
            return default
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (above is not None and value <= above) or (minimum is not None and value < minimum) \
                or (maximum is not None and value > maximum):
            self.problem(path, f"expected {expected}, got {describe(value)}")
            return default
        return float(value)

    def integer(self, path: YPath, default: I, *, minimum: int | None = None, maximum: int | None = None,
                choices: Collection[int] | None = None, required: bool = False) -> int | I:
        if choices is not None:
            expected = "one of " + ", ".join(str(c) for c in choices)
        else:
            expected = f"a whole number{_bounds(None, minimum, maximum)}"
        if self._absent(path, required, expected):
            return default
        value = self.doc.get(path)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or (minimum is not None and value < minimum) or (maximum is not None and value > maximum) \
                or (choices is not None and value not in choices):
            self.problem(path, f"expected {expected}, got {describe(value)}")
            return default
        return int(value)

    def string(self, path: YPath, default: S, *, required: bool = False, nullable: bool = False,
               choices: Collection[str] | None = None, pattern: re.Pattern[str] | None = None,
               expected: str = "a string", allow_empty: bool = False) -> str | S:
        if choices is not None:
            expected = "one of " + ", ".join(choices)
        expected += " or null" if nullable else ""
        if self._absent(path, required, expected):
            return default
        value = self.doc.get(path)
        if value is None and nullable:
            return default
        if not isinstance(value, str) or (value == "" and not allow_empty):
            hint = " (put it in quotes)" if isinstance(value, (int, float)) else ""
            got = "an empty string" if value == "" else describe(value)
            self.problem(path, f"expected {expected}, got {got}{hint}")
            return default
        if (choices is not None and value not in choices) or (pattern and not pattern.match(value)):
            self.problem(path, f"expected {expected}, got {describe(value)}")
            return default
        return value

    def boolean(self, path: YPath, default: bool) -> bool:
        if self._absent(path, False, "true or false"):
            return default
        value = self.doc.get(path)
        if not isinstance(value, bool):
            hint = " (only true and false are booleans)" if isinstance(value, str) else ""
            self.problem(path, f"expected true or false, got {describe(value)}{hint}")
            return default
        return value


def unknown_key(key: str, allowed: Collection[str]) -> str:
    """"unknown key 'perod_s'; did you mean 'period_s'?" (or the list of known keys)."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    return f"unknown key {key!r}; expected one of: {', '.join(sorted(allowed))}"
