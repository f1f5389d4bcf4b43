"""Line-instrument parsing: DCD pattern to values, ranges, and command wire text."""

from __future__ import annotations

import pytest

from edge.line_parse import (
    ReadingInvalid,
    answer_matches,
    check_range,
    compile_pattern,
    parse_line,
    render_wire,
)
from lecis.dcd import CommandSpec, ParamSpec, ReadingSpec
from lecis.errors import CommandFailed

TURBIDITY = (ReadingSpec("turbidity", "NTU", 0.0, 4000.0),)
PATTERN = r"^T=(?P<turbidity>[0-9.]+) NTU$"


def test_turbidity_line_gives_its_value() -> None:
    pattern = compile_pattern(PATTERN, TURBIDITY)
    assert parse_line(pattern, "T=12.3 NTU") == {"turbidity": 12.3}
    assert parse_line(pattern, "T=12.3 NTU\r") == {"turbidity": 12.3}


def test_several_named_groups_and_optional_parts() -> None:
    pattern = compile_pattern(r"(?P<a>-?[0-9.]+);(?P<b>[0-9.]+)(;(?P<c>[0-9.]+))?$")
    assert parse_line(pattern, "-1.5;2") == {"a": -1.5, "b": 2.0}
    assert parse_line(pattern, "1;2;3") == {"a": 1.0, "b": 2.0, "c": 3.0}


@pytest.mark.parametrize("line", ["T=12.3 FNU", "T= NTU", "T=12.3.4 NTU", "\x00\x7f", "T=1\ufffd2 NTU", ""])
def test_lines_that_do_not_parse_are_bad_data_naming_the_line(line: str) -> None:
    pattern = compile_pattern(PATTERN, TURBIDITY)
    with pytest.raises(ReadingInvalid) as caught:
        parse_line(pattern, line)
    assert caught.value.code == "bad_data"
    assert repr(line)[:6] in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "words"),
    [("T=(?P<turbidity>[0-9.]+", "not a valid"), ("T=([0-9.]+)", "no named group"),
     ("(?P<colour>[0-9]+)", "colour")],
)
def test_unusable_patterns_are_refused_with_a_reason(pattern: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        compile_pattern(pattern, TURBIDITY)


def test_range_check_names_value_and_range() -> None:
    check_range({"turbidity": 4000.0}, TURBIDITY)
    with pytest.raises(ReadingInvalid) as caught:
        check_range({"turbidity": 4000.5}, TURBIDITY)
    assert caught.value.code == "out_of_range"
    assert "4000.5" in caught.value.message and "0 to 4000" in caught.value.message


def test_open_ended_range_and_undeclared_values_pass() -> None:
    check_range({"x": -1e9, "other": 5.0}, (ReadingSpec("x", "V", None, 1.0),))
    with pytest.raises(ReadingInvalid):
        check_range({"x": 2.0}, (ReadingSpec("x", "V", None, 1.0),))


CAL = CommandSpec("calibrate_mid", (ParamSpec("point", minimum=0, maximum=14),), wire="Cal,mid,{point:.2f}")


def test_wire_is_rendered_from_validated_args() -> None:
    assert render_wire(CAL, CAL.validate({"point": 7})) == "Cal,mid,7.00"


def test_wire_problems_are_command_failures() -> None:
    with pytest.raises(CommandFailed, match="no `wire`"):
        render_wire(CommandSpec("x"), {})
    with pytest.raises(CommandFailed, match="point"):
        render_wire(CAL, {})
    with pytest.raises(CommandFailed, match="line break"):
        render_wire(CommandSpec("n", wire="Name,{name}"), {"name": "a\rR"})


def test_answer_matches_any_line() -> None:
    assert answer_matches(None, [])
    assert answer_matches(r"^\?Cal,[0-3]$", ["?Cal,2", "*OK"])
    assert not answer_matches(r"^\?Cal,[0-3]$", ["?Cal,9"])
