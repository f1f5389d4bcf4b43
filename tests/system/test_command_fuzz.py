"""10,000 random and malformed command payloads: each is rejected with the right kind, nothing moves.

The unit runs as its own process on mock pins; the fuzzer is an outside MQTT
client. No lease is held during the run, so every command that names a real
command is `denied`; anything that is not a command is `validation`, and a
name nobody knows is `unknown_command`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lecis.states import STANDARD_COMMANDS
from provisioning.broker import MosquittoProcess
from tests.system.inproc import PUMP, VALVE, write_equipment_unit
from tests.system.processes import spawn, stop

pytestmark = pytest.mark.system
UNIT = "fuzz-1"
MODULE_COMMANDS = {"pump1": {"on", "off", "run", "dose"}, "valve1": {"on", "off", "pulse"}}
UNIT_COMMANDS = {"lease.acquire", "lease.renew", "lease.release", "ESTOP", "CLEAR", "RESET", "STATUS",
                 "LOCAL", "REMOTE"}
LEASE_FREE = {"STATUS", "ESTOP", "LEASE.ACQUIRE"}
BATCH = 100
EXAMPLES = 100  # 100 x 100 = 10,000 payloads


class Fuzzer:
    """A paho client that publishes batches and collects the unit's replies and states."""

    def __init__(self, port: int) -> None:
        self.replies: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.sentinels: dict[str, threading.Event] = {}
        self.answered: dict[str, dict[str, Any]] = {}  # first reply per id, across batches
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fuzz-{uuid.uuid4().hex[:6]}")
        self.client.on_message = self._on_message
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"lab/{UNIT}/+/reply", qos=1)
        self.client.subscribe(f"lab/{UNIT}/$reply", qos=1)
        self.client.subscribe(f"lab/{UNIT}/+/state", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        with self.lock:
            if message.topic.endswith("/state"):
                self.states.append(payload)
                return
            self.replies.append(payload)
        event = self.sentinels.get(payload.get("id"))
        if event is not None:
            event.set()

    def sync(self) -> None:
        """Wait until the unit has answered everything sent before (it answers in order)."""
        sentinel = f"sentinel-{uuid.uuid4()}"
        event = self.sentinels[sentinel] = threading.Event()
        self.client.publish(f"lab/{UNIT}/$cmd", json.dumps({"id": sentinel, "cmd": "STATUS"}), qos=1)
        assert event.wait(20), "the unit stopped answering"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def fuzz_unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    broker = MosquittoProcess().start()
    config = write_equipment_unit(tmp, UNIT, broker.port, {"pump1": PUMP, "valve1": VALVE}, extra="")
    proc = spawn(["edge", "run", "--config", str(config), "--pin-factory", "mock"], tmp / "unit.log")
    fuzzer = Fuzzer(broker.port)
    try:
        for _ in range(50):
            try:
                fuzzer.sync()
                break
            except AssertionError:
                continue
        yield fuzzer
    finally:
        fuzzer.close()
        stop(proc)
        broker.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
command_names = st.sampled_from(
    ["on", "off", "run", "dose", "pulse", "INIT", "PAUSE", "RESUME", "ABORT", "CLEAR", "RESET", "LOCAL",
     "REMOTE", "clear", "reset", "lease.renew", "lease.release", "__import__('os')", "rm -rf /", "ON", ""]
) | st.text(max_size=12).filter(lambda name: name.upper() not in LEASE_FREE)
bad_numbers = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-5", "1" * 400])


@st.composite
def commands(draw: st.DrawFn) -> tuple[str, bytes]:
    target = draw(st.sampled_from(["pump1", "valve1", "$cmd", "nosuch"]))
    kind = draw(st.sampled_from(["object", "object", "object", "binary", "not_object", "raw_number"]))
    if kind == "binary":
        return target, draw(st.binary(max_size=64))
    if kind == "not_object":
        value = draw(st.lists(json_values, max_size=3) | st.text() | st.integers())
        return target, json.dumps(value).encode()
    body: dict[str, Any] = {"id": draw(st.uuids().map(str) | json_values), "cmd": draw(command_names)}
    if draw(st.booleans()):
        body["args"] = draw(st.dictionaries(st.sampled_from(["seconds", "ml", "speed", "x"]), json_values,
                                            max_size=2) | json_values)
    lease = draw(st.none() | st.text(max_size=30) | st.just("stale-token-from-yesterday") | json_values)
    if lease is not None:
        body["lease"] = lease
    text = json.dumps(body)
    if kind == "raw_number" and isinstance(body.get("args"), dict) and body["args"]:
        key = next(iter(body["args"]))
        text = text.replace(json.dumps(body["args"][key]), draw(bad_numbers), 1)
    return target, text.encode()


def expected_kind(target: str, payload: bytes) -> tuple[str | None, str] | None:
    """(id, kind) the contract demands, or None for payloads that may legitimately succeed."""
    def refuse(constant: str) -> None:
        raise ValueError(constant)

    try:
        body = json.loads(payload.decode("utf-8"), parse_constant=refuse)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, "validation"
    if not isinstance(body, dict):
        return None, "validation"
    cid = body.get("id")
    if not isinstance(cid, str) or not cid or len(cid) > 128:
        return None, "validation"
    cmd = body.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        return cid, "validation"
    if body.get("args") is not None and not isinstance(body.get("args"), dict):
        return cid, "validation"
    if body.get("lease") is not None and not isinstance(body.get("lease"), str):
        return cid, "validation"
    if cmd.upper() in LEASE_FREE:
        return None  # STATUS / ESTOP / lease.acquire may succeed; not generated on purpose
    if target == "$cmd":
        known = cmd in UNIT_COMMANDS or (cmd.upper() in UNIT_COMMANDS and not cmd.upper().startswith("LEASE"))
    elif target == "nosuch":
        known = False
    else:
        known = cmd.upper() in STANDARD_COMMANDS or cmd in MODULE_COMMANDS[target]
    return cid, "denied" if known else "unknown_command"


# No shrinking: each step is a round of 100 messages through a broker; the failing batch is reported whole.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(batch=st.lists(commands(), min_size=BATCH, max_size=BATCH))
def test_fuzzed_commands_are_rejected_and_nothing_moves(fuzz_unit: Fuzzer, batch: list[tuple[str, bytes]]
                                                        ) -> None:
    with fuzz_unit.lock:
        fuzz_unit.replies.clear()
    expectations: dict[str, str] = {}
    anonymous = 0
    for target, payload in batch:
        topic = f"lab/{UNIT}/$cmd" if target == "$cmd" else f"lab/{UNIT}/{target}/cmd"
        expected = expected_kind(target, payload)
        if expected is not None:
            cid, kind = expected
            if cid is None:
                anonymous += 1
            else:
                expectations.setdefault(cid, kind)  # a replayed id gets the earlier outcome
        fuzz_unit.client.publish(topic, payload, qos=1)
    fuzz_unit.sync()
    with fuzz_unit.lock:
        replies = [r for r in fuzz_unit.replies if not str(r.get("id")).startswith("sentinel-")]
        states = list(fuzz_unit.states)
    by_id: dict[str, dict[str, Any]] = {}
    for reply in replies:
        assert reply["status"] == "rejected", reply
        if reply["id"] is not None:
            by_id.setdefault(reply["id"], reply)
    for cid, kind in expectations.items():
        assert cid in by_id, f"no reply to {cid}"
        earlier = fuzz_unit.answered.get(cid)
        if earlier is not None:  # an id replayed from an earlier batch: the earlier outcome, again
            assert by_id[cid]["error"] == earlier["error"], (by_id[cid], earlier)
            continue
        assert by_id[cid]["error"]["kind"] == kind, (by_id[cid], kind)
    for cid, reply in by_id.items():
        fuzz_unit.answered.setdefault(cid, reply)
    assert sum(1 for r in replies if r["id"] is None) >= anonymous
    for state in states:
        assert state["outputs"].get("on") is not True, state
        assert state["lecis"] == "IDLE", state
