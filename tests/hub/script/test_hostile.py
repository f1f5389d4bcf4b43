"""Hostile scripts: every code point, giant numbers, deep nesting, huge files; clear errors, never a crash."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.script.errors import ExpressionError, ScriptError
from hub.script.expr import parse_expression
from hub.script.lexer import bad_character
from hub.script.loader import ScriptFileError, load_script, parse_script
from hub.script.model import Position
from hub.script.units import capabilities_for
from lecis.wire.birth import Birth

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
EXAMPLE = (EXAMPLES / "respirometry.yaml").read_text(encoding="utf-8")
AT = Position("s.yaml", 1, 1)


@pytest.fixture(scope="module")
def births() -> dict[str, Birth]:
    return capabilities_for(EXAMPLES / "respirometry.yaml", {"bench-1": "unit.yaml"})


def position(text: str, needle: str, plus: int = 0) -> tuple[int, int]:
    """Line and column of `needle` in `text` (plus `plus` characters)."""
    offset = text.index(needle) + plus
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def test_every_code_point_is_text_or_refused_by_name() -> None:
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        why = bad_character(ch)
        category = unicodedata.category(ch)
        if category == "Cs" or (category == "Cc" and ch not in "\t\n"):
            assert why is not None and f"U+{code:04X}" in why
        else:
            assert why is None


@pytest.mark.parametrize("start", range(0, sys.maxunicode + 1, 0x8000))
def test_every_code_point_in_a_string_and_a_name(start: int) -> None:
    for code in range(start, min(start + 0x8000, sys.maxunicode + 1), 7):
        ch = chr(code)
        for text in (f"'a{ch}b'", f"x{ch}y > 1", f"bench-1/do1.do_mg{ch}"):
            try:
                parse_expression(text, AT)
            except ExpressionError as exc:
                assert exc.problem.line == 1 and exc.problem.column is not None
                assert exc.problem.message


def with_task(task: str) -> str:
    return EXAMPLE.rstrip("\n") + "\n" + task + "\n"


def test_a_lone_surrogate_or_control_character_in_a_script_is_a_clear_error(births: dict[str, Birth]) -> None:
    for bad in ("\ud800", "\udfff", "\x00", "\x1b"):
        text = with_task(f'  - {{name: odd, at: 1m, do: [{{log: "aer{bad}ating"}}]}}')
        with pytest.raises(ScriptFileError) as info:
            parse_script(text, "s.yaml", births)
        problem = info.value.problems[0]
        assert (problem.line, problem.column) == position(text, bad)
        assert f"U+{ord(bad):04X}" in problem.message
    text = with_task('  - {name: odd, at: 1m, do: [{log: "aer\\u0007ating"}]}')  # a YAML escape: our check
    with pytest.raises(ScriptError, match="control character U\\+0007"):
        parse_script(text, "s.yaml", births)


def test_giant_integers_are_refused_where_written(births: dict[str, Birth]) -> None:
    giant = "9" * 400
    for text in (EXAMPLE.replace("cycles: 0", f"cycles: {giant}"),
                 with_task(f'  - {{name: big, at: 1m, do: [{{log: "x {{cycles * {giant}}}"}}]}}'),
                 with_task(f"  - {{name: big, when: cycles > {giant}, do: [stop]}}"),
                 with_task(f"  - {{name: big, at: 1m, do: [{{bench-1/base_pump: "
                           f"{{dose: {{ml: {giant}}}}}}}]}}")):
        with pytest.raises(ScriptError) as info:
            parse_script(text, "s.yaml", births)
        problem = info.value.problems[0]
        assert (problem.line, problem.column) == position(text, giant), str(problem)
        assert "too large" in problem.message or "at most 40" in problem.message


def test_deep_nesting_is_refused(births: dict[str, Birth]) -> None:
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(ScriptFileError, match="nest"):
        parse_script(f"experiment: x\nunits: {deep}\n", "s.yaml", births)
    text = with_task("  - {name: deep, when: " + "(" * 1000 + "cycles > 1" + ")" * 1000 + ", do: [stop]}")
    with pytest.raises(ScriptError, match="nests deeper than 64 levels"):
        parse_script(text, "s.yaml", births)


def test_huge_and_non_text_files_are_unusable(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * 1_100_000 + b"\n")
    with pytest.raises(ScriptFileError, match="larger than 1000 kB"):
        load_script(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"experiment: x\n\xff\xfe\n")
    with pytest.raises(ScriptFileError) as info:
        load_script(binary)
    assert info.value.problems[0].line == 2 and "0xff is not UTF-8" in info.value.problems[0].message
    for text, message in (("", "empty"), ("- a\n- b\n", "a list"), ("a: [\n", "not valid YAML")):
        path = tmp_path / "x.yaml"
        path.write_text(text)
        with pytest.raises(ScriptFileError, match=message):
            load_script(path)
    with pytest.raises(ScriptFileError, match="folder"):
        load_script(tmp_path)


def test_thousands_of_tasks_check_and_duplicates_are_all_reported(births: dict[str, Birth]) -> None:
    tasks = "".join(f"  - {{name: t{i % 300}, every: {i + 1}s, do: [{{log: \"n {{cycles}}\"}}]}}\n"
                    for i in range(600))
    text = EXAMPLE + tasks
    with pytest.raises(ScriptError) as info:
        parse_script(text, "s.yaml", births)
    assert len(info.value.problems) == 300
    with pytest.raises(ScriptFileError, match="more than 10000 values; a script needs"):
        parse_script(EXAMPLE + tasks * 3, "s.yaml", births)
    assert all("duplicate task name" in p.message for p in info.value.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, len(EXAMPLE) - 1), st.integers(0, 30), st.text(max_size=6))
def test_random_edits_of_the_example_give_only_script_errors(births: dict[str, Birth], at: int, cut: int,
                                                             insert: str) -> None:
    text = EXAMPLE[:at] + insert + EXAMPLE[at + cut:]
    try:
        parse_script(text, "s.yaml", births)
    except ScriptError as exc:
        assert exc.problems and all(p.message for p in exc.problems)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_random_text_gives_only_script_errors(births: dict[str, Birth], text: str) -> None:
    try:
        parse_script(text, "s.yaml", births)
    except ScriptError as exc:
        assert exc.problems


_WORDS = ["experiment", "units", "bench-1", "unit.yaml", "dcd", "duration", "stale_after", "on_error", "stop",
          "variables", "signals", "loops", "guards", "tasks", "name", "at", "after", "every", "when", "while",
          "for", "until", "from", "delay", "do", "on_exit", "log", "set", "wait", "session", "start", "pause",
          "message", "level", "onoff", "pid", "input", "setpoint", "kp", "ki", "kd", "limits", "period",
          "on_below", "off_above", "on_above", "off_below", "min_on", "min_off", "enabled", "hold", "slope",
          "mean", "window", "scale", "bench-1/aeration", "bench-1/heater", "bench-1/base_pump", "on", "off",
          "dose", "ml", "bench-1/do1.do_mg", "cycles", "30s", "1h", "cycles > 1", "{cycles}", "event", "task"]
_LEAVES = st.one_of(st.sampled_from(_WORDS), st.integers(-10**20, 10**20), st.floats(), st.booleans(),
                    st.none(), st.text(max_size=8))
_TREES = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_WORDS), inner, max_size=5)), max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(_WORDS), _TREES, max_size=8))
def test_random_script_shaped_documents_give_only_script_errors(births: dict[str, Birth],
                                                               tree: dict[str, object]) -> None:
    import json

    text = json.dumps({"units": {"bench-1": "unit.yaml"}, "experiment": "x", **tree})  # JSON is YAML
    try:
        parse_script(text, "s.yaml", births)
    except ScriptError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
