"""The typed wire codecs: every message round-trips, and every bad field is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lecis.commands import Command, ReplyStatus
from lecis.dcd_loader import load_dcd
from lecis.errors import ErrorKind, LabedgeError, WireEncodeError, WireFormatError
from lecis.states import Control, LecisState
from lecis.wire import (
    Birth,
    BirthModule,
    Button,
    CommandFormatError,
    Data,
    Event,
    HubState,
    Message,
    ModuleState,
    Reading,
    Reply,
    ReplyError,
    RunningCommand,
    Session,
    StateError,
    UnitState,
    UnitStateName,
    decode,
    encode,
    from_bytes,
    to_bytes,
)

TS = "2026-11-21T15:04:05.123Z"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dcd"


def example_birth() -> Birth:
    modules = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        dcd = load_dcd(path)
        modules[dcd.module] = BirthModule.from_dcd(dcd)
    described = Birth("bench-1", "0.1.0", "boot-1", TS, modules, {"outbox": {"max_messages": 1000}})
    # What a reader gets: the wire templates of serial commands are the unit's business, not in $birth.
    return decode(Birth, encode(described))


MESSAGES: list[Message] = [
    UnitState(UnitStateName.READY, "boot-1", TS),
    ModuleState(LecisState.BUSY, Control.REMOTE, TS, {"on": True, "speed": 0.5},
                None, RunningCommand("c1", "run")),
    ModuleState(LecisState.ERROR, Control.LOCAL, TS, {}, StateError("device_lost", "port gone")),
    Data(7, (Reading(TS, {"ph": 7.02}), Reading(TS, {"ph": 7.03, "temp": 21.5})), hist=True),
    Event(8, TS, "warning", "bad_data", "noise on the line"),
    Reply("c1", ReplyStatus.DONE, TS, None, {"token": "t"}),
    Reply(None, ReplyStatus.REJECTED, TS, ReplyError(ErrorKind.VALIDATION, "'id' is missing", "id")),
    Button("stop", "held", TS),
    HubState(False, TS),
    Session("s-1", "closed", TS, TS, {"state": "done", "files": 3}),
    Session("s-2", "open", TS),
    example_birth(),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Message) -> None:
    payload = encode(message)
    assert decode(type(message), payload) == message
    assert json.loads(payload) == message.to_json()


def test_a_command_round_trips_through_the_units_own_parser() -> None:
    command = Command("c1", "run", {"seconds": 2.5, "n": 10**30}, "tok")
    assert decode(Command, encode(command)) == command


def test_lone_surrogates_are_written_as_json_escapes_and_read_back() -> None:
    reply = Reply("\ud800x\udfff", ReplyStatus.DONE, TS, result={"k\udc80": "v"})
    payload = encode(reply)
    assert b"\\ud800x\\udfff" in payload and b"\\udc80" in payload
    assert decode(Reply, payload) == reply


def test_other_characters_stay_readable_utf8() -> None:
    assert to_bytes({"unit": "°C"}) == '{"unit":"°C"}'.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"a": object()}])
def test_what_json_cannot_hold_is_a_named_encode_error(value: Any) -> None:
    with pytest.raises(WireEncodeError):
        to_bytes({"v": value})


def data(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"seq": 1, "hist": False,
                            "readings": [{"ts": TS, "values": {"ph": 7.0}}] * 3}
    body.update(changes)
    return body


BAD: list[tuple[type[Message], Any, str | None, str]] = [
    (Data, [], None, "must be a JSON object, got an array"),
    (Data, data(seq="1"), "seq", "must be an integer"),
    (Data, data(seq=True), "seq", "must be an integer"),
    (Data, data(seq=-1), "seq", "from 0"),
    (Data, data(seq=10**30), "seq", "from 0"),
    (Data, data(hist=None), "hist", "true or false"),
    (Data, data(readings=[]), "readings", "non-empty array"),
    (Data, data(readings=[{"ts": TS, "values": {"ph": 7}}] * 2 + [{"ts": "yesterday", "values": {"a": 1}}]),
     "readings[2].ts", "milliseconds and Z"),
    (Data, data(readings=[{"ts": "2026-13-40T00:00:00.000Z", "values": {"a": 1}}]),
     "readings[0].ts", "not a real instant"),
    (Data, data(readings=[{"ts": TS, "values": {}}]), "readings[0].values", "at least one"),
    (Data, data(readings=[{"ts": TS, "values": {"ph": "7"}}]), "readings[0].values.ph", "must be a number"),
    (Data, data(readings=[{"ts": TS, "values": {"ph": 10**400}}]), "readings[0].values.ph", "too large"),
    (Data, data(readings=[{"ts": TS}]), "readings[0].values", "missing"),
    (Event, {"seq": 1, "ts": TS, "level": "panic", "code": "x", "message": "m"}, "level",
     "info, warning, alarm"),
    (Event, {"seq": 1, "ts": TS, "level": "info", "code": "", "message": "m"}, "code", "non-empty"),
    (Event, {"seq": 1, "ts": TS, "level": "info", "code": "x"}, "message", "missing"),
    (UnitState, {"state": "up", "boot": "b", "ts": TS}, "state", "init, ready"),
    (UnitState, {"state": "ready", "boot": "", "ts": TS}, "boot", "non-empty"),
    (ModuleState, {"lecis": "IDLE", "control": "REMOTE", "outputs": [], "error": None, "ts": TS},
     "outputs", "JSON object"),
    (ModuleState, {"lecis": "idle", "control": "REMOTE", "outputs": {}, "error": None, "ts": TS},
     "lecis", "IDLE"),
    (ModuleState, {"lecis": "IDLE", "control": "REMOTE", "outputs": {}, "error": {"code": "x"}, "ts": TS},
     "error.message", "missing"),
    (Reply, {"id": "a", "status": "rejected", "error": None, "result": {}, "ts": TS}, "error", "needs"),
    (Reply, {"id": "a", "status": "done", "error": {"kind": "state"}, "result": {}, "ts": TS},
     "error", "must be null"),
    (Reply, {"id": "a", "status": "failed", "error": {"kind": "oops", "param": None, "message": "m"},
             "result": {}, "ts": TS}, "error.kind", "unknown_command"),
    (Reply, {"id": 5, "status": "done", "error": None, "result": {}, "ts": TS}, "id", "string or null"),
    (Reply, {"id": "a", "status": "done", "error": None, "result": [], "ts": TS}, "result", "JSON object"),
    (Button, {"button": "go", "action": "pressed", "ts": TS}, "button", "start, stop"),
    (Button, {"button": "stop", "action": "tapped", "ts": TS}, "action", "pressed, held"),
    (HubState, {"online": "yes", "ts": TS}, "online", "true or false"),
    (Session, {"id": "s", "state": "open", "started_at": None, "ended_at": None}, "started_at", "Z"),
    (Session, {"id": "s", "state": "closed", "started_at": TS, "ended_at": None}, "ended_at",
     "closed session"),
    (Session, {"id": "s", "state": "gone", "started_at": TS, "ended_at": None}, "state", "open, closing"),
]


@pytest.mark.parametrize(("cls", "value", "field", "says"), BAD,
                         ids=[f"{c.__name__}-{f}" for c, _, f, _ in BAD])
def test_every_bad_field_is_named(cls: type[Message], value: Any, field: str | None, says: str) -> None:
    with pytest.raises(WireFormatError) as caught:
        decode(cls, json.dumps(value).encode())
    assert caught.value.field == field
    assert says in caught.value.message
    assert isinstance(caught.value, LabedgeError)


def birth_json(**module_changes: Any) -> dict[str, Any]:
    body = example_birth().to_json()
    body["modules"]["base_pump"].update(module_changes)
    return body


@pytest.mark.parametrize(("module", "field", "says"), [
    ({"kind": "robot"}, "modules.base_pump.kind", "instrument, equipment"),
    ({"readings": {}}, "modules.base_pump.readings", "an array"),
    ({"commands": {"run": {"params": {"seconds": {"type": "float"}}}}},
     "modules.base_pump.commands.run.params.seconds.type", "number, integer"),
    ({"commands": {"run": {"params": {"seconds": {"type": "number", "min": "0"}}}}},
     "modules.base_pump.commands.run.params.seconds.min", "a number"),
    ({"commands": {"run": {"params": {"seconds": {"type": "number", "default": "x"}}}}},
     "modules.base_pump.commands.run.params.seconds.default", "does not fit"),
    ({"on_controller_loss": "maybe"}, "modules.base_pump.on_controller_loss", "off, hold"),
])
def test_a_bad_birth_names_the_module_field(module: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(WireFormatError) as caught:
        decode(Birth, json.dumps(birth_json(**module)).encode())
    assert caught.value.field == field and says in caught.value.message


def test_a_birth_reading_range_is_checked() -> None:
    body = birth_json()
    body["modules"]["ph1"]["readings"][0]["range"] = [0, "14"]
    with pytest.raises(WireFormatError) as caught:
        decode(Birth, json.dumps(body).encode())
    assert caught.value.field == "modules.ph1.readings[0].range[1]"


@pytest.mark.parametrize(("payload", "says"), [
    (b"\xff\xfe", "not UTF-8"),
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b"[" * 40 + b"]" * 40, "deeper than 32"),
    (b"[" * 100_000, "too deeply"),
    (b"1" * 5000, "not JSON"),
    (b" " * (1024 * 1024 + 1), "limit"),
])
def test_bytes_that_are_no_json_value_are_named(payload: bytes, says: str) -> None:
    with pytest.raises(WireFormatError) as caught:
        from_bytes(payload)
    assert says in str(caught.value)


def test_a_bad_command_is_both_a_wire_error_and_the_units_rejection() -> None:
    with pytest.raises(CommandFormatError) as caught:
        decode(Command, b'{"id": "c1", "cmd": ""}')
    error = caught.value
    assert isinstance(error, WireFormatError) and error.field == "cmd"
    assert error.to_error()["kind"] == "validation" and error.command_id == "c1"


def test_topic_filters_come_from_lecis_topics() -> None:
    from lecis.topics import Topics

    topics = Topics("plant")
    assert topics.module_reply_filter("u1") == "plant/u1/+/reply"
    assert topics.module_cmd_filter("u1") == "plant/u1/+/cmd"
    assert topics.module_filter("u1", "data") == "plant/u1/+/data"
    assert (topics.unit_filter("u1"), topics.all_filter()) == ("plant/u1/#", "plant/#")
    assert (topics.hub_cmd(), topics.hub_reply()) == ("plant/hub/$cmd", "plant/hub/$reply")
    assert topics.hub_sessions_filter() == "plant/hub/sessions/+"
    assert topics.hub_experiment("state") == "plant/hub/experiment/state"


def test_a_payload_is_decoded_by_its_topic() -> None:
    from lecis.topics import Topics
    from lecis.wire import decode_topic

    topics = Topics()
    for message, topic in [(MESSAGES[0], topics.unit_state("u1")),
                           (MESSAGES[1], topics.module_state("u1", "p1")),
                           (MESSAGES[3], topics.data("u1", "p1")), (MESSAGES[4], topics.event("u1", "p1")),
                           (MESSAGES[5], topics.reply("u1", "p1")), (MESSAGES[6], topics.unit_reply("u1")),
                           (MESSAGES[7], topics.button("u1")), (MESSAGES[8], topics.hub_state()),
                           (MESSAGES[9], topics.hub_session("u1")), (MESSAGES[-1], topics.birth("u1"))]:
        assert decode_topic(topics, topic, encode(message)) == message, topic
    command = Command("c1", "STATUS")
    assert decode_topic(topics, topics.cmd("u1", "p1"), encode(command)) == command
    assert decode_topic(topics, topics.unit_cmd("u1"), encode(command)) == command
    assert decode_topic(topics, "lab/u1/p1/other", b"{}") is None
    assert decode_topic(topics, "elsewhere/u1/p1/data", b"{}") is None
    with pytest.raises(WireFormatError):
        decode_topic(topics, topics.data("u1", "p1"), b"{}")
