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
        (b'{"id": "x", "cmd": "on", "args": {"s": NaN}}', None, "not JSON"),
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
