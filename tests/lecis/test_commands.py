from __future__ import annotations

import pytest

from lecis.commands import CommandPayloadInvalid, parse_command


def test_a_good_command_parses() -> None:
    command = parse_command(b'{"id": "c1", "cmd": "dose", "args": {"ml": 2.5}, "lease": "tok"}')
    assert (command.id, command.cmd, command.args, command.lease) == ("c1", "dose", {"ml": 2.5}, "tok")


def test_args_default_to_empty() -> None:
    assert parse_command(b'{"id": "c1", "cmd": "STATUS"}').args == {}


@pytest.mark.parametrize(
    ("payload", "param", "says"),
    [
        (b"\xff\xfe", None, "not UTF-8"),
        (b"{not json", None, "not JSON"),
        (b'{"id": "x", "cmd": "on", "args": {"s": NaN}}', None, "NaN is not a JSON number"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"cmd": "on"}', "id", "'id'"),
        (b'{"id": 5, "cmd": "on"}', "id", "'id'"),
        (b'{"id": "x", "cmd": 3}', "cmd", "'cmd'"),
        (b'{"id": "x", "cmd": "on", "args": [1]}', "args", "'args'"),
        (b'{"id": "x", "cmd": "on", "lease": 12}', "lease", "'lease'"),
    ],
)
def test_bad_payloads_say_what_is_wrong(payload: bytes, param: str | None, says: str) -> None:
    with pytest.raises(CommandPayloadInvalid) as caught:
        parse_command(payload)
    assert caught.value.param == param
    assert says in caught.value.message
    assert caught.value.kind.value == "validation"


def test_the_id_is_kept_when_only_later_fields_are_bad() -> None:
    with pytest.raises(CommandPayloadInvalid) as caught:
        parse_command(b'{"id": "keep-me", "cmd": ""}')
    assert caught.value.command_id == "keep-me"


def test_huge_payloads_are_refused_before_parsing() -> None:
    with pytest.raises(CommandPayloadInvalid, match="limit"):
        parse_command(b'{"id": "x", "cmd": "' + b"a" * 70000 + b'"}')


@pytest.mark.parametrize(
    ("payload", "param", "command_id"),
    [
        (rb'{"id": "\ud800", "cmd": "STATUS"}', "id", None),
        (rb'{"id": "x", "cmd": "\udfff"}', "cmd", "x"),
        (rb'{"id": "x", "cmd": "STATUS", "lease": "t\ud800"}', "lease", "x"),
        (rb'{"id": "x", "cmd": "on", "args": {"\ud800": 1}}', "args", "x"),
        (rb'{"id": "x", "cmd": "on", "args": {"speed": "\ud800"}}', "speed", "x"),
        (rb'{"id": "x", "cmd": "on", "args": {"speed": [[{"k": ["\ud83d"]}]]}}', "speed", "x"),
        (rb'{"id": "x", "cmd": "on", "args": {"speed": {"\udc00": 1}}}', "speed", "x"),
        (rb'{"id": "x", "cmd": "STATUS", "note": "\ud800"}', "note", "x"),
        (rb'{"id": "x", "cmd": "STATUS", "\ud800": 1}', None, "x"),
    ],
)
def test_text_that_cannot_be_sent_back_as_utf8_is_refused_naming_the_field(
        payload: bytes, param: str | None, command_id: str | None) -> None:
    with pytest.raises(CommandPayloadInvalid) as caught:
        parse_command(payload)
    assert caught.value.param == param
    assert caught.value.command_id == command_id
    caught.value.message.encode("utf-8")  # the message itself can always be sent


def test_a_paired_surrogate_escape_is_just_text() -> None:
    assert parse_command(rb'{"id": "x", "cmd": "on", "args": {"who": "\ud83d\ude00"}}').args == {"who": "😀"}


def test_nesting_is_bounded_like_every_contract_message() -> None:
    def nested(depth: int) -> bytes:
        return b'{"id": "x", "cmd": "on", "args": {"a": ' + b"[" * depth + b'"ok"' + b"]" * depth + b"}}"

    assert parse_command(nested(29)).id == "x"
    for depth in (31, 900, 5000):
        with pytest.raises(CommandPayloadInvalid, match=r"nests (deeper than 32 levels|too deeply)"):
            parse_command(nested(depth))


@pytest.mark.parametrize("value", [10**400, -(10**400), float("inf"), float("nan"), True, "1", None])
def test_is_finite_number_refuses_what_no_float_holds(value: object) -> None:
    from lecis.commands import is_finite_number

    assert not is_finite_number(value)


@pytest.mark.parametrize("ptype", ["number", "integer"])
def test_param_spec_refuses_a_huge_integer_naming_the_parameter(ptype: str) -> None:
    from lecis.dcd import ParamSpec
    from lecis.errors import CommandInvalid

    spec = ParamSpec("seconds", ptype, minimum=0, maximum=60)  # type: ignore[arg-type]
    with pytest.raises(CommandInvalid) as caught:
        spec.check(10**400)
    assert caught.value.param == "seconds"
