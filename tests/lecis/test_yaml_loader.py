"""YAML loading: YAML 1.2 scalars, lines of keys, and problems located by file, line and field."""

from __future__ import annotations

import contextlib
import json
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lecis.dcd_loader import check_dcd
from lecis.errors import ConfigError, ConfigProblem
from lecis.yaml_loader import MISSING, Fields, field_name, load_yaml, parse_yaml, parse_yaml_bytes

TEXT = """\
# a comment first
name: pump
flags:
  a: on
  b: off
  c: yes
  d: no
  e: true
  f: false
list:
  - first
  - second: 2
    third: 3
"""


def one_problem(text: str) -> ConfigProblem:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml")
    assert len(info.value.problems) == 1
    return info.value.problems[0]


def test_only_true_and_false_are_booleans() -> None:
    doc = parse_yaml(TEXT, "f.yaml")
    assert doc.data["flags"] == {"a": "on", "b": "off", "c": "yes", "d": "no", "e": True, "f": False}


def test_values_are_plain_python_types() -> None:
    doc = parse_yaml("i: 0x10\nf: 1.5\ng: 1e3\nn: ~\ns: !!str 3\n", "f.yaml")
    assert doc.data == {"i": 16, "f": 1.5, "g": 1000.0, "n": None, "s": "3"}
    assert [type(v) for v in doc.data.values()] == [int, float, float, type(None), str]


def test_lines_of_keys_list_items_and_absent_paths() -> None:
    doc = parse_yaml(TEXT, "f.yaml")
    assert doc.line_of(("name",)) == 2
    assert doc.line_of(("flags", "c")) == 6
    assert doc.line_of(("list", 1)) == 12
    assert doc.line_of(("list", 1, "third")) == 13
    assert doc.line_of(("flags", "zzz", "deeper")) == 3  # nearest existing parent
    assert doc.get(("list", 1, "second")) == 2
    assert doc.get(("list", 5)) is MISSING


def test_field_names_are_dotted_with_list_indexes() -> None:
    path = ("commands", "cal_mid", "params", "point", "min")
    assert field_name(path) == "commands.cal_mid.params.point.min"
    assert field_name(("modules", 2)) == "modules[2]"


def test_duplicate_keys_are_problems_with_both_lines_and_the_first_value_kept() -> None:
    doc = parse_yaml("a: 1\nsub:\n  x: 1\n  y: 2\n  x: 3\na: 2\n", "f.yaml")
    assert doc.data == {"a": 1, "sub": {"x": 1, "y": 2}}
    assert [(p.file, p.line, p.field) for p in doc.problems] == [("f.yaml", 5, "sub.x"), ("f.yaml", 6, "a")]
    assert "first given at line 3" in doc.problems[0].message


def test_invalid_yaml_is_one_problem_with_line_and_column() -> None:
    problem = one_problem("a: 1\nb: [1, 2\nc: 3\n")
    assert problem.file == "f.yaml"
    assert problem.line == 3
    assert "not valid YAML at column" in problem.message


def test_tab_indentation_is_reported_where_it_is() -> None:
    problem = one_problem("a: 1\n\tb: 2\n")
    assert problem.line == 2
    assert "'\\t'" in problem.message


def test_empty_file_and_non_mapping_top_level_are_problems() -> None:
    assert "empty" in one_problem("# only a comment\n").message
    problem = one_problem("\n- a\n- b\n")
    assert (problem.line, problem.field) == (2, None)
    assert "got a list" in problem.message


def test_unsupported_tags_are_problems() -> None:
    doc = parse_yaml("a: !secret x\n", "f.yaml")
    assert [(p.line, p.field) for p in doc.problems] == [(1, "a")]


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(tmp_path / "nope.yaml")
    missing = str(tmp_path / "nope.yaml")
    assert info.value.problems == [ConfigProblem(missing, None, None, "file does not exist")]
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"a: \xe9\n")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_yaml(bad)


def test_fields_report_wrong_types_with_what_was_expected() -> None:
    doc = parse_yaml("period_s: fast\nport: 1234\nflag: yes\nrate: 0\n", "f.yaml")
    f = Fields(doc)
    assert f.number(("period_s",), 1.0, above=0) == 1.0  # the default, so checking goes on
    assert f.string(("port",), None) is None
    assert f.boolean(("flag",), True) is True
    assert f.integer(("rate",), 5, minimum=1, maximum=10) == 5
    assert [str(p) for p in f.problems] == [
        "f.yaml:1: period_s: expected a number above 0, got 'fast'",
        "f.yaml:2: port: expected a string, got 1234 (put it in quotes)",
        "f.yaml:3: flag: expected true or false, got 'yes' (only true and false are booleans)",
        "f.yaml:4: rate: expected a whole number from 1 to 10, got 0",
    ]


def test_fields_reject_nan_and_missing_required_values() -> None:
    f = Fields(parse_yaml("x: .nan\n", "f.yaml"))
    f.number(("x",), None)
    f.number(("y",), None, required=True)
    assert [(p.line, p.field, p.message) for p in f.problems] == [
        (1, "x", "expected a number, got nan"),
        (1, "y", "missing; expected a number"),
    ]


def test_unknown_keys_get_a_suggestion_or_the_known_keys() -> None:
    f = Fields(parse_yaml("outer:\n  perod_s: 1\n  zzz: 2\n", "f.yaml"))
    f.mapping(("outer",), ("period_s", "port"))
    assert [(p.line, p.field, p.message) for p in f.problems] == [
        (2, "outer.perod_s", "unknown key 'perod_s'; did you mean 'period_s'?"),
        (3, "outer.zzz", "unknown key 'zzz'; expected one of: period_s, port"),
    ]


# Hostile files: each is a ConfigError (or a problem) naming file and line, quickly and in bounded memory.

BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefghij"], "abcdefghijk", strict=True)
)


def refused(text: str) -> ConfigProblem:
    """The one problem `text` is refused with, after checking it came quickly and in little memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as info:
            parse_yaml(text, "f.yaml")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(info.value.problems) == 1
    assert elapsed < 10.0, f"took {elapsed:.1f} s"  # unbounded, a bomb takes minutes, then MemoryError
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    return info.value.problems[0]


def test_billion_laughs_alias_bomb_is_refused_at_its_line() -> None:
    assert len(BOMB.splitlines()) == 11  # 9**11 values once expanded
    problem = refused(BOMB)
    assert (problem.file, problem.line, problem.field) == ("f.yaml", 5, "e[0]")
    assert "aliases make this file more than" in problem.message


def test_an_alias_inside_the_value_it_names_is_refused() -> None:
    assert "repeat forever" in refused("a: &a [1, *a]\n").message
    problem = refused("top:\n  m: &m {b: {c: *m}}\n")
    assert (problem.line, problem.field) == (2, "top.m.b.c")


def test_aliases_within_bounds_still_work() -> None:
    doc = parse_yaml("base: &p {min: 0, max: 10}\nother: *p\nn: &n 3\nm: *n\n", "f.yaml")
    assert doc.data == {"base": {"min": 0, "max": 10}, "other": {"min": 0, "max": 10}, "n": 3, "m": 3}


@pytest.mark.parametrize("text, line, field", [
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", 1, "a[0][0][0][0][0]..."),
    ("a: " + "{k: " * 5000 + "}" * 5000 + "\n", 1, "a.k.k.k.k.k..."),
    ("".join("  " * i + f"k{i}:\n" for i in range(5000)) + "  " * 5000 + "x: 1\n", 33,
     "k0.k1.k2.k3.k4.k5..."),
    ("".join("  " * i + "-\n" for i in range(5000)), 33, "[0][0][0][0][0][0]..."),
    ("a: &a " + "[" * 20 + "]" * 20 + "\nb: {c: " + "[" * 20 + "*a" + "]" * 20 + "}\n", 2,
     "b.c[0][0][0][0]..."),
])
def test_deep_nesting_is_refused_where_it_goes_too_deep(text: str, line: int, field: str) -> None:
    problem = refused(text)
    assert (problem.line, problem.field) == (line, field)
    assert "levels deep" in problem.message


def test_huge_integers_are_one_problem_each_and_typed_reads_say_nothing_more() -> None:
    doc = parse_yaml(f"port: {'9' * 400}\nbaud: -{'1' * 5000}\nhex: 0x{'f' * 30}\nok: 12\n", "f.yaml")
    f = Fields(doc)
    assert f.integer(("port",), 1883, minimum=1, maximum=65535) == 1883
    assert f.number(("baud",), 1.0) == 1.0
    assert f.integer(("hex",), 0) == 0
    assert f.integer(("ok",), 0) == 12
    assert [(p.line, p.field) for p in f.problems] == [(1, "port"), (2, "baud"), (3, "hex")]
    assert all(p.message.startswith("number too large; whole numbers here are from") for p in f.problems)
    assert parse_yaml(f"a: {2**63 - 1}\nb: -{2**63 - 1}\n", "f.yaml").problems == []


def test_floats_beyond_range_are_reported_by_typed_reads() -> None:
    f = Fields(parse_yaml(f"a: 1e400\nb: {'9' * 5000}.5\n", "f.yaml"))
    f.number(("a",), None)
    f.number(("b",), None)
    assert [(p.line, p.message) for p in f.problems] == [(1, "expected a number, got inf"),
                                                         (2, "expected a number, got inf")]


@pytest.mark.parametrize("text, message", [
    ("a: !!int abc\n", "'abc' is not a valid int"),
    ("a: !!float abc\n", "'abc' is not a valid float"),
    ("a: !!int\n", "'' is not a valid int"),
    ("a: 2001-13-45\n", "'2001-13-45' is not a valid timestamp"),
    ("a: <<\n", "the YAML tag tag:yaml.org,2002:merge is not supported here; write a plain value"),
    ("a: !!binary aGk=\n",
     "the YAML tag tag:yaml.org,2002:binary is not supported here; write a plain value"),
])
def test_values_that_cannot_be_built_are_problems(text: str, message: str) -> None:
    doc = parse_yaml(text, "f.yaml")
    assert [(p.line, p.field, p.message) for p in doc.problems] == [(1, "a", message)]
    assert doc.data == {"a": None}


@pytest.mark.parametrize("char", ["\x00", "\x07", "\ud800", "\udfff", "\x7f", "\ufffe"])
def test_control_characters_and_lone_surrogates_are_located(char: str) -> None:
    problem = one_problem(f"a: 1\nb: x{char}\n")
    assert problem.line == 2
    assert f"at column 5: character U+{ord(char):04X} is not allowed" in problem.message


def test_long_keys_and_values_are_shortened_in_messages() -> None:
    doc = parse_yaml(f"{'k' * 500}: 1\n? {'q' * 5000}\n: 2\nport: {'p' * 5000}\n", "f.yaml")
    assert [(p.line, p.message) for p in doc.problems] == [
        (1, "a key of 500 characters; keys here are names of at most 100"),
        (2, "a key of 5000 characters; keys here are names of at most 100")]
    f = Fields(doc, [])
    f.string(("port",), None, choices=("a", "b"))
    assert len(f.problems[0].message) < 200


def test_oversized_files_and_endless_devices_are_refused_reading_a_bounded_amount(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" + b"#" * 2_000_000)
    with pytest.raises(ConfigError, match="larger than 1000 kB"):
        load_yaml(big)
    with pytest.raises(ConfigError, match="larger than 1000 kB"):
        load_yaml(Path("/dev/zero"))
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_yaml(tmp_path)
    os.mkfifo(tmp_path / "pipe.yaml")  # opening it would wait for a writer forever
    with pytest.raises(ConfigError, match="it is a pipe or socket, not a file"):
        load_yaml(tmp_path / "pipe.yaml")


def test_not_utf8_is_located_and_a_bom_is_fine() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml_bytes(b"a: 1\nb: \xe9t\xe9\n", "f.yaml")
    assert str(info.value) == ("f.yaml:2: cannot read the file: byte 0xe9 is not UTF-8 text; "
                               "save the file as UTF-8")
    assert parse_yaml_bytes(b"\xef\xbb\xbfa: 1\n", "f.yaml").data == {"a": 1}


# Fuzz: whatever the bytes or text, the loader answers with a document or a ConfigError, nothing else.

ANY_CHAR = st.characters(codec=None, exclude_categories=())  # every code point, lone surrogates too
YAMLISH = st.lists(st.one_of(
    st.sampled_from(["a", "b: ", "- ", "? ", ": ", "[", "]", "{", "}", ", ", "&x ", "*x", "&y ", "*y", "\n",
                     "  ", "\t", "!!int ", "!!float ", "!!str ", "!!binary ", "!secret ", "<<: ", "'", '"',
                     "# ", "---\n", "...\n", "|\n  ", ">-\n  ", "~", "true", "1e999", "-.inf", ".nan",
                     "0x", "0o", "2001-13-45", "9" * 400, "\\", "%YAML 1.2\n", "\ufeff"]),
    st.text(ANY_CHAR, max_size=5),
    st.integers().map(str),
), max_size=60).map("".join)


def loads_or_refuses(load: Any) -> None:
    try:
        doc = load()
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, ConfigProblem) for p in exc.problems)
        return
    f = Fields(doc)
    for key in doc.data:
        f.number((key,), None)
        f.integer((key,), None)
        f.string((key,), None)
        f.boolean((key,), False)
    for problem in f.problems:
        assert "\n" not in problem.message
    with contextlib.suppress(ConfigError):
        check_dcd(doc)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(raw: bytes) -> None:
    loads_or_refuses(lambda: parse_yaml_bytes(raw, "f.yaml"))


@settings(max_examples=300, deadline=None)
@given(st.text(ANY_CHAR, max_size=200))
def test_fuzz_any_text(text: str) -> None:
    loads_or_refuses(lambda: parse_yaml(text, "f.yaml"))


@settings(max_examples=500, deadline=None)
@given(YAMLISH)
def test_fuzz_yaml_fragments(text: str) -> None:
    loads_or_refuses(lambda: parse_yaml(text, "f.yaml"))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(ANY_CHAR, max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(ANY_CHAR, max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(JSONISH, st.sampled_from([0, 1, 30, 31, 32, 33, 1000]))
def test_fuzz_nested_values_huge_ints_and_depth(value: Any, depth: int) -> None:
    body = json.dumps(value, ensure_ascii=False)  # JSON is YAML 1.2
    loads_or_refuses(lambda: parse_yaml(f"a: {'[' * depth}{body}{']' * depth}\nb: {body}\n", "f.yaml"))
    loads_or_refuses(lambda: parse_yaml(f"module: {body}\ndriver: gpio.pump\npin: {body}\n", "f.yaml"))
