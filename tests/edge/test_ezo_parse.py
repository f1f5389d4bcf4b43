"""The EZO dialect parser: line kinds, readings per probe, and what must never become a reading."""

from __future__ import annotations

import pytest

from edge.ezo_parse import (
    LineKind,
    ReadingInvalid,
    classify,
    parse_info,
    parse_reading,
    reading_names,
)
from lecis.errors import LabedgeError


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("*OK", LineKind.CODE),
        ("*er", LineKind.CODE),
        ("*RE", LineKind.CODE),
        ("*RS", LineKind.CODE),
        ("*OV", LineKind.CODE),
        ("?i,pH,2.16", LineKind.ANSWER),
        ("?*OK,1", LineKind.ANSWER),
        ("7.012", LineKind.DATA),
        ("8.42,95.1", LineKind.DATA),
        ("*XX", LineKind.GARBAGE),
        ("7.0\x00\x13", LineKind.GARBAGE),
        ("7.\ufffd12", LineKind.GARBAGE),
        ("", LineKind.GARBAGE),
    ],
)
def test_classify_sorts_each_kind_of_line(line: str, kind: LineKind) -> None:
    assert classify(line).kind is kind


def test_code_is_upper_case_and_only_for_codes() -> None:
    assert classify("*ok").code == "*OK"
    assert classify("7.01").code is None
    assert classify("?i,pH,2.16").code is None


@pytest.mark.parametrize(("line", "code"), [("\x05\x91*OK", "*OK"), ("7.0*OK", "*OK"), ("\x13*RE", "*RE")])
def test_a_code_glued_to_noise_is_garbage_that_still_carries_the_code(line: str, code: str) -> None:
    got = classify(line)
    assert got.kind is LineKind.GARBAGE
    assert got.code == code


def test_ph_reading() -> None:
    assert parse_reading("ph", ["7.012"]) == {"ph": 7.012}


def test_rtd_reading_including_below_zero() -> None:
    assert parse_reading("rtd", ["-3.250"]) == {"temp": -3.25}


def test_rtd_without_probe_is_no_probe_not_a_temperature() -> None:
    with pytest.raises(ReadingInvalid) as caught:
        parse_reading("rtd", ["-1023.000"])
    assert caught.value.code == "no_probe"
    assert "-1023.000" in str(caught.value)


@pytest.mark.parametrize(
    ("outputs", "line", "values"),
    [
        (("mg", "%"), "8.42,95.1", {"do_mg": 8.42, "do_sat": 95.1}),
        (("%", "mg"), "8.42,95.1", {"do_mg": 8.42, "do_sat": 95.1}),  # the circuit's order, not the DCD's
        (("mg",), "8.42", {"do_mg": 8.42}),
        (("%",), "95.1", {"do_sat": 95.1}),
    ],
)
def test_do_fields_follow_the_enabled_outputs(
    outputs: tuple[str, ...], line: str, values: dict[str, float]
) -> None:
    assert parse_reading("do", [line], outputs) == values


def test_do_with_one_field_missing_is_bad_data() -> None:
    with pytest.raises(ReadingInvalid, match="1 value"):
        parse_reading("do", ["8.42"], ("mg", "%"))


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["7.01", "7.02"],
        ["7.0\x00\x13"],
        ["abc"],
        ["7.01.2"],
        ["nan"],
        ["1e3"],
        [" "],
        ["?i,pH,2.16"],
    ],
)
def test_anything_but_one_clean_number_is_bad_data_naming_the_line(lines: list[str]) -> None:
    with pytest.raises(ReadingInvalid) as caught:
        parse_reading("ph", lines)
    assert caught.value.code == "bad_data"
    assert (repr(lines[0]) if lines else "nothing") in str(caught.value)


def test_reading_invalid_is_a_labedge_value_error() -> None:
    with pytest.raises(ValueError):
        parse_reading("ph", ["x"])
    with pytest.raises(LabedgeError):
        parse_reading("ph", ["x"])


def test_long_garbage_is_truncated_in_the_message() -> None:
    with pytest.raises(ReadingInvalid) as caught:
        parse_reading("ph", ["\x01" * 500])
    assert len(str(caught.value)) < 200
    assert "500 chars" in str(caught.value)


def test_info_answer() -> None:
    assert parse_info("?i,D.O.,4.10") == ("D.O.", "4.10")
    assert parse_info("?I,pH,2.16") == ("pH", "2.16")
    with pytest.raises(ReadingInvalid):
        parse_info("?Status,P,5.03")


def test_reading_names_per_probe() -> None:
    assert reading_names("ph") == ("ph",)
    assert reading_names("rtd") == ("temp",)
    assert reading_names("do", ["%"]) == ("do_sat",)
    with pytest.raises(ValueError, match="orp"):
        reading_names("orp")
