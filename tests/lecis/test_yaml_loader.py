"""YAML loading: YAML 1.2 scalars, lines of keys, and problems located by file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lecis.errors import ConfigError, ConfigProblem
from lecis.yaml_loader import MISSING, Fields, field_name, load_yaml, parse_yaml

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
