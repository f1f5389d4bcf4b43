"""Commands from the whole input space, sent by an outsider: each answered as the contract says.

The unit runs as its own process on mock pins; the fuzzer is an outside MQTT
client that holds the unit's lease, so some cases carry the real token and
reach argument checking. Payloads: raw bytes, invalid UTF-8 (UTF-8-encoded
surrogates included), JSON with every code point (lone surrogates as
`\\udXXX` escapes) in every field, integers of any size, deep nesting around
the payload limit, and well-formed commands with hostile values, to `$cmd`
and to every module. Each reply's kind must follow the contract's order
(known command, lease, state, arguments); after every batch the process is
alive, answers STATUS and obeys ESTOP (retained ESTOPPED, outputs off), and
CLEAR brings it back.

`LABEDGE_FUZZ_BATCHES` (default 80, of 100 payloads each) sets the size of
the generated run: `LABEDGE_FUZZ_BATCHES=1000 pytest tests/system/test_command_fuzz.py`
is the soak.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
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
HOLDER = "fuzzer"
PWM_PUMP = PUMP.replace("module: pump1", "module: pump2").replace("pin: 17", "pin: 18") + "pwm: true\n"
DCDS = {"pump1": PUMP, "pump2": PWM_PUMP, "valve1": VALVE}
MODULES = tuple(DCDS)
# Device commands and their parameters, as the DCDs above declare them.
PARAMS: dict[str, dict[str, tuple[str, ...]]] = {
    "pump1": {"on": (), "off": (), "run": ("seconds",), "dose": ("ml",)},
    "pump2": {"on": ("speed",), "off": (), "run": ("seconds", "speed"), "dose": ("ml", "speed")},
    "valve1": {"on": (), "off": (), "pulse": ("seconds",)},
}
UNIT_COMMANDS = ("lease.acquire", "lease.renew", "lease.release", "ESTOP", "CLEAR", "RESET", "STATUS",
                 "LOCAL", "REMOTE")
MAX_PAYLOAD = 64 * 1024
BATCH = 100
BATCHES = int(os.environ.get("LABEDGE_FUZZ_BATCHES", "80"))
REPLY_WAIT_S = 10.0

REJECTED = "rejected"
VALIDATION = (REJECTED, "validation")
DENIED = (REJECTED, "denied")
UNKNOWN = (REJECTED, "unknown_command")
STATE = (REJECTED, "state")
DONE = ("done", None)
Outcome = tuple[str, str | None]


@dataclass
class Case:
    """One payload and what the contract lets the unit answer."""

    target: str  # "$cmd", a module id, or a module that does not exist
    payload: bytes
    cid: str | None  # the id the reply must carry; None: answered with "id": null
    allowed: frozenset[Outcome]
    maybe_anonymous: bool = False  # the id may be unreadable: "id": null, kind validation, is fine too
    note: str = ""
    params: frozenset[str] | None = None  # a validation reply's `param` must be one of these
    may_ignore: bool = False  # a topic that names no module the unit could have: no reply is fine
    raw_topic: str | None = None  # a topic of another shape than the target's

    @property
    def topic(self) -> str:
        if self.raw_topic is not None:
            return self.raw_topic
        return f"lab/{UNIT}/$cmd" if self.target == "$cmd" else f"lab/{UNIT}/{self.target}/cmd"

    def describe(self) -> str:
        shown = self.payload[:300]
        more = f" ... ({len(self.payload)} bytes)" if len(self.payload) > 300 else ""
        return f"{self.note} to {self.topic}: {shown!r}{more}"

    __repr__ = describe  # hypothesis prints failing batches: keep 64 KiB payloads short


# ---- the fuzzer: an outside MQTT client -------------------------------------------------------------

@dataclass
class Seen:
    replies: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # topic -> last payload
    retained: dict[str, dict[str, Any]] = field(default_factory=dict)  # as a new subscriber gets it
    violations: list[str] = field(default_factory=list)


class Fuzzer:
    """A paho client that publishes payloads and collects the unit's replies and states."""

    def __init__(self, port: int) -> None:
        self.seen = Seen()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.token: str | None = None
        self.answered: dict[str, dict[str, Any]] = {}  # first final reply per id, across batches
        self.sent: dict[str, Case] = {}  # every case with an id, for replays
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fuzz-{uuid.uuid4().hex[:6]}")
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.disconnected = False
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        for topic in (f"lab/{UNIT}/+/reply", f"lab/{UNIT}/$reply", f"lab/{UNIT}/+/state",
                      f"lab/{UNIT}/$state"):
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.changed:
            try:
                payload = json.loads(message.payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                self.seen.violations.append(
                    f"{message.topic}: not UTF-8 JSON ({exc}): {message.payload[:200]!r}")
                self.changed.notify_all()
                return
            if not isinstance(payload, dict):
                self.seen.violations.append(f"{message.topic}: not an object: {payload!r}")
            elif message.topic.endswith("reply"):
                self.seen.replies.append(payload)
            else:
                self.seen.latest[message.topic] = payload
                if message.retain:
                    self.seen.retained[message.topic] = payload
                elif message.topic.endswith("/state"):
                    self.seen.states.append((message.topic, payload))
            self.changed.notify_all()

    def _on_disconnect(self, *args: Any) -> None:
        self.disconnected = True  # the fuzzer's own session is gone, and its subscriptions with it

    def publish(self, topic: str, payload: bytes) -> None:
        assert not self.disconnected, "the broker dropped the fuzzer's connection (a topic it refused?)"
        self.client.publish(topic, payload, qos=1)

    def wait(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not (result := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
                self.changed.wait(min(left, 0.2))
            return result

    def replies_to(self, cid: str) -> list[dict[str, Any]]:
        return [r for r in self.seen.replies if r.get("id") == cid]

    def call(self, cmd: str, args: dict[str, Any] | None = None, lease: bool = False, timeout: float = 10.0,
             target: str = "$cmd") -> dict[str, Any]:
        """Send one well-formed command and return its final reply."""
        cid = f"ctl-{uuid.uuid4()}"
        body: dict[str, Any] = {"id": cid, "cmd": cmd, "args": args or {}}
        if lease and self.token:
            body["lease"] = self.token
        topic = f"lab/{UNIT}/$cmd" if target == "$cmd" else f"lab/{UNIT}/{target}/cmd"
        self.publish(topic, json.dumps(body).encode())
        final = self.wait(lambda: [r for r in self.replies_to(cid) if r["status"] in ("done", "failed",
                                                                                        REJECTED)],
                          timeout, f"the unit's answer to {cmd}")
        return dict(final[0])

    def module_states(self) -> dict[str, dict[str, Any]]:
        return {m: self.seen.latest.get(f"lab/{UNIT}/{m}/state", {}) for m in MODULES}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class FuzzedUnit:
    """The unit process under fuzz; started again (same data dir) if a case killed or silenced it."""

    def __init__(self, tmp: Path, broker: MosquittoProcess) -> None:
        self.tmp = tmp
        self.config = write_equipment_unit(tmp, UNIT, broker.port, DCDS, extra="")
        self.proc: subprocess.Popen[bytes] | None = None
        self.fuzzer = Fuzzer(broker.port)
        self.starts = 0

    def start(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        self.starts += 1
        self.proc = spawn(["edge", "run", "--config", str(self.config), "--pin-factory", "mock"],
                          self.tmp / "unit.log")
        before = self.fuzzer.seen.latest.get(f"lab/{UNIT}/$state", {}).get("boot")

        def ready() -> bool:
            state = self.fuzzer.seen.latest.get(f"lab/{UNIT}/$state", {})
            return state.get("state") == "ready" and state.get("boot") != before and self.alive()

        self.fuzzer.wait(ready, 20, "the unit to come up ready (a new boot)")
        reply = self.fuzzer.call("lease.acquire", {"holder": HOLDER, "ttl_s": 300})
        assert reply["status"] == "done", reply
        self.fuzzer.token = reply["result"]["token"]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        text = (self.tmp / "unit.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check_alive_and_obedient(self) -> None:
        """The process lives, answers STATUS, obeys ESTOP (retained, outputs off) and CLEARs."""
        fuzzer = self.fuzzer
        code = self.proc and self.proc.returncode
        assert self.alive(), f"the unit process exited ({code}):\n{self.log_tail()}"
        status = fuzzer.call("STATUS", timeout=REPLY_WAIT_S)
        assert status["status"] == "done" and set(status["result"]["modules"]) == set(MODULES), status
        unit_state = fuzzer.seen.latest.get(f"lab/{UNIT}/$state", {})
        assert unit_state.get("state") == "ready", unit_state
        estop = fuzzer.call("ESTOP", timeout=REPLY_WAIT_S)
        assert estop["status"] == "done", estop

        def retained_estopped() -> bool:
            found = [fuzzer.seen.retained.get(f"lab/{UNIT}/{m}/state", {}) for m in MODULES]
            return all(s.get("lecis") == "ESTOPPED" and s.get("outputs", {}).get("on") is False
                       for s in found)

        for _ in range(10):  # as a newcomer sees it: subscribe again, the broker sends what it retains
            with fuzzer.lock:
                fuzzer.seen.retained.clear()
            fuzzer.client.subscribe(f"lab/{UNIT}/+/state", qos=1)
            try:
                fuzzer.wait(retained_estopped, 0.5, "retained states")
                break
            except AssertionError:
                continue
        fuzzer.wait(retained_estopped, 5, "every module's retained state ESTOPPED with outputs off")
        cleared = fuzzer.call("CLEAR", lease=True, timeout=REPLY_WAIT_S)
        assert cleared["status"] == "done", cleared
        fuzzer.wait(lambda: all(s.get("lecis") == "IDLE" for s in fuzzer.module_states().values()), 5,
                    "every module IDLE after CLEAR")

    def ensure_healthy(self) -> None:
        if self.proc is None:
            self.start()
            return
        try:
            self.check_alive_and_obedient()
        except AssertionError:
            self.start()  # an earlier case silenced it: that test failed; give the next a live unit
            self.check_alive_and_obedient()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedUnit]:
    broker = MosquittoProcess().start()
    unit = FuzzedUnit(tmp_path_factory.mktemp("fuzz"), broker)
    try:
        unit.start()
        yield unit
    finally:
        unit.fuzzer.close()
        if unit.proc is not None:
            stop(unit.proc)
        broker.stop()


@pytest.fixture
def unit(fuzzed: FuzzedUnit) -> FuzzedUnit:
    fuzzed.ensure_healthy()
    return fuzzed


# ---- the oracle ---------------------------------------------------------------------------------

def dumps(body: Any) -> bytes:
    """JSON as an outsider may send it: ASCII with `\\uXXXX` escapes, so lone surrogates survive."""
    return json.dumps(body, ensure_ascii=True).encode()


def is_plain_id(cid: str) -> bool:
    return cid.isascii() and cid.isprintable()


def known_on(target: str, cmd: str) -> str | None:
    """The name a target knows `cmd` by, or None: the first check of the contract."""
    if target == "$cmd":
        if cmd in UNIT_COMMANDS:
            return cmd
        upper = cmd.upper()
        return upper if upper in UNIT_COMMANDS and not upper.startswith("LEASE") else None
    if target not in PARAMS:
        return None
    if cmd.upper() in STANDARD_COMMANDS:
        return cmd.upper()
    return cmd if cmd in PARAMS[target] else None


def printable_holder(holder: Any) -> bool:
    return isinstance(holder, str) and bool(holder.strip()) and len(holder) <= 64 and holder.isprintable() \
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in holder)


def valid_ttl(ttl: Any) -> bool:
    return isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and 0 < ttl <= 300


def acquire_outcomes(args: dict[str, Any]) -> frozenset[Outcome]:
    holder, ttl = args.get("holder"), args.get("ttl_s")
    if not printable_holder(holder) or not valid_ttl(ttl) or set(args) - {"holder", "ttl_s"}:
        return frozenset({VALIDATION})
    # A holder name the unit finds too odd may be refused as such; otherwise the fuzzer holds the lease.
    return frozenset({DENIED, VALIDATION})


def number_invalid(param: str, value: Any) -> bool:
    """True if `value` can never pass as `param` (so a command carrying it must not move anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    if value != value or value in (float("inf"), float("-inf")):
        return True
    if param == "speed":
        return not 0 <= value <= 1
    if param == "ml":  # above 2 ml (max_on_s 2 s at 1 ml/s) no dose fits, however large
        return value < 0.001 or value > 2.5
    return value < 0.001  # seconds: any positive length is a valid request (cut at max_on_s)


def args_invalid(params: tuple[str, ...], args: dict[str, Any]) -> bool:
    if set(args) - set(params):
        return True
    required = [p for p in params if p != "speed"]
    if any(p not in args for p in required):
        return True
    return any(number_invalid(p, v) for p, v in args.items())


def has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def expected(target: str, body: Any, leased: bool) -> tuple[frozenset[Outcome], bool]:
    """(allowed outcomes, id may be unreadable) for a JSON object body, by the contract's order."""
    cmd, args, lease = body.get("cmd"), body.get("args", {}), body.get("lease")
    if not isinstance(cmd, str) or not cmd:
        return frozenset({VALIDATION}), False
    shape_bad = (args is not None and not isinstance(args, dict)) or (lease is not None
                                                                     and not isinstance(lease, str))
    args = args if isinstance(args, dict) else {"args": args}
    name = known_on(target, cmd)
    if name is None:
        kinds = {UNKNOWN}
    elif name in ("STATUS",):
        kinds = {DONE} if not args else {DONE, VALIDATION}
    elif name == "lease.acquire":
        kinds = set(acquire_outcomes(args))
    elif not leased:
        kinds = {DENIED}
    elif target == "$cmd":  # leased cases always carry arguments, and unit commands take none
        kinds = {VALIDATION}
    elif name in ("INIT", "PAUSE", "RESUME", "ABORT", "CLEAR"):
        kinds = {STATE}  # the module is IDLE: state comes before arguments
    elif name in STANDARD_COMMANDS:
        kinds = {VALIDATION}
    else:
        assert args_invalid(PARAMS[target][name], args), (target, body)
        kinds = {VALIDATION}
    # A malformed field, or text that is not Unicode (a lone surrogate cannot be UTF-8), may be
    # refused as a malformed payload, before any other check.
    if shape_bad or has_lone_surrogate(body):
        kinds.add(VALIDATION)
    return frozenset(kinds), False


# ---- strategies ------------------------------------------------------------------------------------

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()) | surrogates \
    | st.characters(max_codepoint=0x1F) | st.sampled_from("\u202e\ufeff\uffff\u2028\x7f\ud83d\ude00")
any_text = st.text(any_char, max_size=24)
HUGE = [10**400, -(10**400), 10**4299, 2**63, -(2**63) - 1, 2**1024, 10**20]
huge_ints = st.sampled_from(HUGE) | st.integers()
floats = st.floats() .filter(lambda x: x == x and abs(x) != float("inf")) | st.sampled_from(
    [1e308, -1e308, 5e-324, -0.0, 0.0, 1e-400])
json_values = st.recursive(
    st.none() | st.booleans() | huge_ints | floats | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=6,
)
hostile_numbers = huge_ints | floats | st.sampled_from([True, False, None, "1", "", [], {}, "\ud800"])
# Raw JSON tokens a Python encoder never writes: not numbers (NaN), past float range, past digit limits.
RAW_TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 400, "-" + "9" * 400, "1" * 4301,
              "0." + "0" * 5000 + "1", "1E400", "00", "-0", "0x10", "1_000", "+1", ".5", "\"\\ud800\"",
              "\"\\udfff\\ud800\"", "\"\\u0000\""]
INVALID_UTF8 = [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80", b"\xc0\x80", b"\xc1\xbf",
                b"\xff", b"\xfe", b"\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80"]
CMD_NAMES = ["on", "off", "run", "dose", "pulse", "INIT", "PAUSE", "RESUME", "ABORT", "CLEAR", "RESET",
             "LOCAL", "REMOTE", "STATUS", "status", "clear", "reset", "lease.renew", "lease.release",
             "lease.acquire", "LEASE.ACQUIRE", "Lease.Renew", "__import__('os')", "rm -rf /", "ON", "Run",
             "on\x00", "on ", "\u200bon", "STATUS\ud800", "\ud800", "x" * 10_000]
targets = st.sampled_from(["$cmd", *MODULES, "nosuch"])
param_keys = st.sampled_from(["seconds", "ml", "speed", "ttl_s", "holder", "x", "", "\ud800", "seconds\x00",
                              "__class__"]) | any_text


def fresh_id(draw: st.DrawFn) -> tuple[str, bool]:
    """A unique string id, sometimes with hostile characters; (id, plain)."""
    base = str(uuid.uuid4())
    extra = draw(any_text | st.sampled_from(["\ud800", "\udfff", "\x00", "\u202e", "\n"]))
    if draw(st.integers(0, 2)):
        return base, True
    cid = draw(st.sampled_from([base + extra, extra + base]))[:128]
    return cid, is_plain_id(cid)


@st.composite
def raw_bytes(draw: st.DrawFn) -> Case:
    payload = draw(st.binary(max_size=300) | st.sampled_from(INVALID_UTF8))
    return Case(draw(targets), payload, None, frozenset({VALIDATION}), note="raw bytes")


@st.composite
def not_an_object(draw: st.DrawFn) -> Case:
    value = draw(st.lists(json_values, max_size=3) | any_text | huge_ints | st.none() | st.booleans())
    return Case(draw(targets), dumps(value), None, frozenset({VALIDATION}), note="JSON, not an object")


@st.composite
def bad_id(draw: st.DrawFn) -> Case:
    cid = draw(json_values.filter(lambda v: not isinstance(v, str)) | st.just("") | st.just("x" * 129)
               | st.text(min_size=129, max_size=200))
    body = {"id": cid, "cmd": draw(st.sampled_from(CMD_NAMES)), "args": {}}
    return Case(draw(targets), dumps(body), None, frozenset({VALIDATION}), note="unusable id")


@st.composite
def args_for(draw: st.DrawFn, target: str, name: str | None, leased: bool) -> dict[str, Any]:
    """Hostile arguments; with a lease they can never pass, so nothing moves."""
    args = draw(st.dictionaries(param_keys, hostile_numbers | json_values, max_size=3))
    if not leased:
        return args
    params = PARAMS.get(target, {}).get(name or "", ())
    if not args or (name in PARAMS.get(target, {}) and not args_invalid(params, args)):
        args[draw(param_keys.filter(lambda k: k not in params))] = draw(json_values)
    return args


@st.composite
def acquire_args(draw: st.DrawFn) -> dict[str, Any]:
    holder = draw(st.sampled_from(["other", "hub", "tsc-2"]) | any_text | hostile_numbers
                  | st.just("x" * 65) | st.sampled_from(["\x1b[2J", "a\nb", "   ", "\ud800", "\u202eevil"]))
    ttl = draw(st.sampled_from([30, 300, 300.0001, 0, -1, 1e-9]) | hostile_numbers)
    args: dict[str, Any] = {"holder": holder, "ttl_s": ttl}
    if draw(st.integers(0, 5)) == 0:
        args[draw(param_keys)] = draw(json_values)
    if draw(st.integers(0, 5)) == 0:
        del args[draw(st.sampled_from(["holder", "ttl_s"]))]
    return args


@st.composite
def command(draw: st.DrawFn) -> Case:
    """A well-formed command object with hostile values in any field."""
    target = draw(targets)
    leased = draw(st.booleans())
    own = sorted(PARAMS.get(target, {})) + list(UNIT_COMMANDS if target == "$cmd" else STANDARD_COMMANDS)
    pick = draw(st.integers(0, 9))
    cmd: Any = draw(st.sampled_from(own) if pick < 5 else st.sampled_from(CMD_NAMES) if pick < 8
                    else any_text if pick < 9 else json_values)
    if isinstance(cmd, str) and cmd.upper() == "ESTOP":  # ESTOP is sent after every batch, on purpose
        cmd = "estop-not"
    cid, plain = fresh_id(draw)
    name = known_on(target, cmd) if isinstance(cmd, str) else None
    if name == "lease.acquire":
        args: Any = draw(acquire_args())
        if printable_holder(args.get("holder")) and args["holder"].strip().lower() == HOLDER:
            args["holder"] = "not-" + HOLDER
    else:
        args = draw(args_for(target, name, leased)) if draw(st.integers(0, 9)) else draw(json_values)
    body: dict[str, Any] = {"id": cid, "cmd": cmd}
    if args != {} or draw(st.booleans()):
        body["args"] = args
    if leased:
        body["lease"] = "TOKEN"  # the fuzzer's real token, filled in when sent
    elif draw(st.booleans()):
        body["lease"] = draw(st.sampled_from(["stale-token-from-yesterday", "\ud800", "", "A" * 10_000])
                             | any_text | json_values)
    if draw(st.integers(0, 7)) == 0:
        body[draw(any_text)] = draw(json_values)  # unknown fields are ignored
    if leased and not (isinstance(body.get("args"), dict) and body["args"]) and name != "lease.acquire":
        body["args"] = {"x": 1}  # with the real token, arguments must be there and wrong
    allowed, anonymous = expected(target, body, leased)
    if not plain:
        allowed, anonymous = allowed | {VALIDATION}, True  # an id the unit may refuse to echo
    params = None
    if leased and name in PARAMS.get(target, {}) and isinstance(body.get("args"), dict) \
            and not has_lone_surrogate(body):
        # The first bad parameter is named: one the command was sent, or one it needs.
        params = frozenset(body["args"]) | frozenset(PARAMS[target][name])
    return Case(target, dumps(body), cid, allowed, anonymous,
                note="leased command" if leased else "command", params=params)


@st.composite
def raw_token(draw: st.DrawFn) -> Case:
    """A command with one argument replaced by a raw JSON token no encoder writes."""
    target = draw(st.sampled_from(MODULES))
    name = draw(st.sampled_from(sorted(n for n, p in PARAMS[target].items() if p)))
    param = PARAMS[target][name][0]
    cid = str(uuid.uuid4())
    token = draw(st.sampled_from(RAW_TOKENS))
    leased = draw(st.booleans())
    body = {"id": cid, "cmd": name, "args": {param: "@@"}, **({"lease": "TOKEN"} if leased else {})}
    payload = dumps(body).replace(b'"@@"', token.encode())
    try:
        parsed = json.loads(payload, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return Case(target, payload, cid, frozenset({VALIDATION}), True, note="raw token, not JSON")
    if leased and not number_invalid(param, parsed["args"][param]):
        # A valid value after all ("1" * 400 seconds is a long run): sent without the token.
        payload, leased = payload.replace(b',"lease":"TOKEN"', b"").replace(b', "lease": "TOKEN"', b""), False
        assert b"TOKEN" not in payload
    if not leased:
        odd = {VALIDATION} if has_lone_surrogate(parsed) else set()
        return Case(target, payload, cid, frozenset({DENIED} | odd), note="raw token")
    return Case(target, payload, cid, frozenset({VALIDATION}), note="leased raw token")


def _refuse(name: str) -> None:
    raise ValueError(name)


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Case:
    """A valid command with bytes that are not UTF-8 inside one of its strings."""
    target = draw(st.sampled_from(["$cmd", *MODULES]))
    cid = str(uuid.uuid4())
    body = {"id": cid + "@@" if draw(st.booleans()) else cid,
            "cmd": "STATUS" if draw(st.booleans()) else "on", "args": {}}
    if "@@" not in body["id"]:
        field_name = draw(st.sampled_from(["cmd", "lease", "key"]))
        if field_name == "cmd":
            body["cmd"] = "on@@"
        elif field_name == "lease":
            body["lease"] = "@@"
        else:
            body["args"] = {"@@": 1}
    payload = dumps(body).replace(b"@@", draw(st.sampled_from(INVALID_UTF8)))
    in_id = "@@" in body["id"]
    # Not UTF-8 is a malformed payload; the unit may still have read a clean id from it.
    return Case(target, payload, None if in_id else cid, frozenset({VALIDATION}), not in_id,
                note="invalid UTF-8")


@st.composite
def deep_or_large(draw: st.DrawFn) -> Case:
    """Deep nesting and sizes around the payload limit."""
    target = draw(st.sampled_from(["$cmd", *MODULES]))
    cid = str(uuid.uuid4())
    kind = draw(st.sampled_from(["deep_whole", "deep_arg", "deep_id", "pad_under", "pad_over", "digits"]))
    if kind == "deep_whole":
        depth = draw(st.sampled_from([5_000, MAX_PAYLOAD // 2 - 1, MAX_PAYLOAD // 2 + 1]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        payload = (opener * depth + "1" + closer * depth).encode()
        return Case(target, payload, None, frozenset({VALIDATION}), note=f"{depth} levels deep")
    if kind in ("deep_arg", "deep_id"):
        size = draw(st.sampled_from([None, MAX_PAYLOAD - 1, MAX_PAYLOAD + 1]))  # 5,000 levels, or the limit
        if kind == "deep_arg":
            head = dumps({"id": cid, "cmd": "run"})[:-1] + b',"args":{"seconds":'
            tail, leaf, what = b"}}", b"1", "args"
        else:
            head, tail, leaf, what = b'{"id":', b',"cmd":"STATUS"}', b'"a"', "id"
        depth = 5_000 if size is None else (size - len(head) - len(tail) - len(leaf)) // 2
        payload = head + b"[" * depth + leaf + b"]" * depth + tail
        note = f"{depth} levels in {what}, {len(payload)} bytes"
        return Case(target, payload, None if kind == "deep_id" else cid, frozenset({VALIDATION}),
                    kind == "deep_arg", note=note)
    if kind == "digits":
        digits = draw(st.sampled_from([400, 4_300, 4_301, 20_000, MAX_PAYLOAD - 200]))
        payload = dumps({"id": cid, "cmd": "lease.acquire", "args": {"holder": "other", "ttl_s": "@@"}})
        payload = payload.replace(b'"@@"', b"9" * digits)
        return Case("$cmd", payload, cid, frozenset({VALIDATION}), True, note=f"ttl_s of {digits} digits")
    body = {"id": cid, "cmd": "on" if target != "$cmd" else "CLEAR", "pad": ""}
    size = len(dumps(body))
    pad = MAX_PAYLOAD - size + (1 if kind == "pad_over" else 0)
    body["pad"] = "p" * pad
    payload = dumps(body)
    assert len(payload) == MAX_PAYLOAD + (1 if kind == "pad_over" else 0)
    if kind == "pad_over":
        return Case(target, payload, cid, frozenset({VALIDATION}), True, note="one byte over the limit")
    # The limit is not part of the contract: at it, the command may be refused as too large.
    return Case(target, payload, cid, frozenset({DENIED, VALIDATION}), True,
                note="exactly at the limit, unknown field")


@st.composite
def odd_topic(draw: st.DrawFn) -> Case:
    """A command to a topic level no module id can have: ignored, or refused as an unknown command.

    (`lab/U/$cmd/cmd` has its own test below.)
    """
    target = draw(st.sampled_from(["PUMP1", "pump1 ", " pump1", "\u00fc", "x" * 40, "$CMD", "$reply",
                                   "pump1\u200b", "-pump1", "_", "pump-1"]) | st.text(
        # Characters the broker takes in a topic: it drops a client that sends control characters.
        st.characters(exclude_characters="+#/", exclude_categories=("Cs", "Cc", "Cn", "Co")),
        min_size=1, max_size=40)
        .filter(lambda t: t not in (*MODULES, "$cmd")))
    cid = str(uuid.uuid4())
    body = {"id": cid, "cmd": draw(st.sampled_from(["on", "STATUS", "ESTOP-not", "run"])), "args": {}}
    if draw(st.booleans()):
        body["lease"] = "TOKEN"
    return Case(target, dumps(body), cid, frozenset({UNKNOWN}), note="odd module topic", may_ignore=True,
                raw_topic=f"lab/{UNIT}/{target}/cmd")


cases = st.one_of(
    command(), command(), command(), command(), command(), raw_bytes(), not_an_object(), bad_id(),
    raw_token(), invalid_utf8(), deep_or_large(), odd_topic(),
)


# ---- running a batch -----------------------------------------------------------------------------

def send_and_check(unit: FuzzedUnit, batch: list[Case], replays: list[int] | None = None) -> None:
    """Publish every case (plus replays of some), then hold each reply to what the contract allows."""
    fuzzer = unit.fuzzer
    token = (fuzzer.token or "").encode()
    with fuzzer.lock:
        fuzzer.seen.replies.clear()
        fuzzer.seen.states.clear()
        fuzzer.seen.violations.clear()
    order = list(batch) + [batch[i] for i in (replays or []) if batch[i].cid is not None]
    for case in order:
        fuzzer.publish(case.topic, case.payload.replace(b'"TOKEN"', b'"' + token + b'"'))
    sentinel = f"sentinel-{uuid.uuid4()}"
    fuzzer.publish(f"lab/{UNIT}/$cmd", dumps({"id": sentinel, "cmd": "STATUS"}))
    try:
        fuzzer.wait(lambda: fuzzer.replies_to(sentinel), REPLY_WAIT_S, "the unit's answer to STATUS")
        with_ids = [c.cid for c in batch if c.cid is not None and not c.maybe_anonymous and not c.may_ignore]
        fuzzer.wait(lambda: all(fuzzer.replies_to(cid) for cid in with_ids), 3, "a reply to every case")
    except AssertionError:
        # The unit answers in order: what silenced it lies after the last answered case,
        # up to the first unanswered one.
        answered = [i for i, c in enumerate(batch) if c.cid is not None and fuzzer.replies_to(c.cid)]
        index = next((i for i, c in enumerate(batch) if c.cid is not None and not c.maybe_anonymous
                      and not c.may_ignore and not fuzzer.replies_to(c.cid)), len(batch) - 1)
        alive = "alive" if unit.alive() else f"dead (exit {unit.proc and unit.proc.returncode})"
        first = max([i for i in answered if i < index], default=-1) + 1
        suspects = "\n  ".join(c.describe() for c in batch[first:index + 1])
        raise AssertionError(
            f"the unit stopped answering (process {alive}); suspects, after the last answered case "
            f"up to the first unanswered one:\n  {suspects}\n{unit.log_tail()}") from None
    with fuzzer.lock:
        replies = [r for r in fuzzer.seen.replies if r.get("id") != sentinel]
        states = list(fuzzer.seen.states)
        violations = list(fuzzer.seen.violations)
    try:
        check_replies(fuzzer, batch, order, replies, states, violations)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- unit log:\n{unit.log_tail(30)}") from None


def check_replies(fuzzer: Fuzzer, batch: list[Case], order: list[Case], replies: list[dict[str, Any]],
                  states: list[tuple[str, dict[str, Any]]], violations: list[str]) -> None:
    assert not violations, violations
    by_id: dict[str, list[dict[str, Any]]] = {}
    for reply in replies:
        if reply.get("id") is not None:
            by_id.setdefault(reply["id"], []).append(reply)
    anonymous = [r for r in replies if r.get("id") is None]
    for reply in anonymous:
        assert (reply["status"], (reply.get("error") or {}).get("kind")) == VALIDATION, reply
    definite = sum(1 for c in order if c.cid is None)
    maybe = 0
    for case in batch:
        if case.cid is None:
            continue
        got = by_id.get(case.cid, [])
        if not got and case.may_ignore:
            continue
        if not got:
            assert case.maybe_anonymous, f"no reply to {case.describe()}"
            maybe += 1 + sum(1 for c in order[len(batch):] if c is case)
            continue
        outcome = (got[0]["status"], (got[0].get("error") or {}).get("kind"))
        earlier = fuzzer.answered.get(case.cid)
        if earlier is not None:  # the same id sent in an earlier batch: the earlier outcome, again
            assert (got[0]["status"], got[0]["error"]) == (earlier["status"], earlier["error"]), \
                (got, earlier)
        else:
            assert outcome in case.allowed, \
                f"{outcome} to {case.describe()}; allowed: {sorted(case.allowed)}\nreply: {got[0]}"
            if outcome == VALIDATION and case.params is not None:
                assert got[0]["error"].get("param") in case.params, \
                    f"param of {got[0]['error']} to {case.describe()}; expected one of {sorted(case.params)}"
        expected_count = 1 + sum(1 for c in order[len(batch):] if c is case)
        assert len(got) == expected_count, \
            f"{len(got)} replies, wanted {expected_count}, to {case.describe()}"
        assert all((r["status"], r["error"]) == (got[0]["status"], got[0]["error"]) for r in got), got
        fuzzer.answered.setdefault(case.cid, got[0])
    assert definite <= len(anonymous) <= definite + maybe, (definite, maybe, len(anonymous))
    for cid, got in by_id.items():
        assert cid in {c.cid for c in batch}, f"a reply to an id nobody sent: {got}"
    for topic, state in states:  # no case may move anything: every command with the token is wrong
        assert state["outputs"].get("on") is not True, (topic, state)
        assert state["lecis"] == "IDLE", (topic, state)


# ---- the tests -------------------------------------------------------------------------------------

def leased(target: str, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "cmd": cmd, "args": args, "lease": "TOKEN"}


KILLERS: dict[str, tuple[str, bytes, frozenset[Outcome], bool]] = {
    # name: (target, payload, allowed outcomes, id may come back null)
    "lone_surrogate_id_status": ("$cmd", b'{"id":"\\ud800","cmd":"STATUS"}', frozenset({VALIDATION, DONE}),
                                 True),
    "lone_surrogate_id_module": ("pump1", b'{"id":"\\udfff","cmd":"on"}', frozenset({VALIDATION, DENIED}),
                                 True),
    "surrogate_pair_reversed_id": ("$cmd", b'{"id":"\\ude00\\ud83d","cmd":"RESET"}',
                                   frozenset({VALIDATION, DENIED}), True),
    "ttl_400_digits": ("$cmd", dumps({"id": "k-ttl-400", "cmd": "lease.acquire",
                                      "args": {"holder": "other", "ttl_s": 10**400}}),
                       frozenset({VALIDATION}), False),
    "ttl_negative_400_digits": ("$cmd", dumps({"id": "k-ttl-neg", "cmd": "lease.acquire",
                                              "args": {"holder": "other", "ttl_s": -(10**400)}}),
                                frozenset({VALIDATION}), False),
    "holder_400_digits": ("$cmd", dumps({"id": "k-holder", "cmd": "lease.acquire",
                                         "args": {"holder": 10**400, "ttl_s": 10}}),
                          frozenset({VALIDATION}), False),
    "holder_terminal_escape": ("$cmd", dumps({"id": "k-holder-esc", "cmd": "lease.acquire",
                                              "args": {"holder": "\x1b[2J\x00", "ttl_s": 10}}),
                               frozenset({VALIDATION}), False),
    "holder_lone_surrogate": ("$cmd", dumps({"id": "k-holder-sur", "cmd": "lease.acquire",
                                             "args": {"holder": "hub\ud800", "ttl_s": 10}}),
                              frozenset({VALIDATION}), False),
    "run_seconds_negative_huge_leased": ("pump1", dumps(leased("pump1", "run", {"seconds": -(10**400)})),
                                         frozenset({VALIDATION}), False),
    "dose_ml_huge_leased": ("pump1", dumps(leased("pump1", "dose", {"ml": 10**400})),
                            frozenset({VALIDATION}), False),
    "on_speed_huge_leased": ("pump2", dumps(leased("pump2", "on", {"speed": 10**400})),
                             frozenset({VALIDATION}), False),
    "pulse_seconds_negative_huge_leased": ("valve1",
                                           dumps(leased("valve1", "pulse", {"seconds": -(2**1100)})),
                                           frozenset({VALIDATION}), False),
    "surrogate_arg_key_leased": ("pump1", dumps(leased("pump1", "on", {"\ud800": 1})),
                                 frozenset({VALIDATION}), False),
    "surrogate_arg_value_leased": ("valve1", dumps(leased("valve1", "pulse", {"seconds": "\udc00"})),
                                   frozenset({VALIDATION}), False),
    "surrogate_cmd": ("pump1", dumps({"id": "k-cmd-sur", "cmd": "on\ud800"}),
                      frozenset({UNKNOWN, VALIDATION}), False),
    "surrogate_lease": ("valve1", dumps({"id": "k-lease-sur", "cmd": "on", "lease": "\ud800"}),
                        frozenset({DENIED, VALIDATION}), False),
    # secrets.compare_digest raises TypeError on non-ASCII str: a token "é" while a lease is live.
    "non_ascii_lease_token": ("pump1", dumps({"id": "k-lease-e", "cmd": "on", "lease": "\u00e9"}),
                              frozenset({DENIED}), False),
    "utf8_encoded_surrogate_in_id": ("$cmd", b'{"id":"\xed\xa0\x80","cmd":"STATUS"}',
                                     frozenset({VALIDATION}), True),
    "nested_5000": ("$cmd", b"[" * 5000 + b"]" * 5000, frozenset({VALIDATION}), True),
    "nested_5000_in_args": ("pump1", b'{"id":"k-deep","cmd":"run","args":{"seconds":' + b"[" * 5000
                            + b"]" * 5000 + b"}}", frozenset({VALIDATION}), True),
    "digits_5000": ("$cmd", b'{"id":"k-digits","cmd":"lease.acquire","args":{"holder":"o","ttl_s":'
                    + b"7" * 5000 + b"}}", frozenset({VALIDATION}), True),
}


@pytest.mark.parametrize("name", sorted(KILLERS))
def test_a_payload_that_cut_units_off_is_answered_and_the_unit_goes_on(unit: FuzzedUnit, name: str) -> None:
    target, payload, allowed, maybe_anonymous = KILLERS[name]
    try:
        cid = json.loads(payload).get("id")
    except (ValueError, RecursionError, AttributeError, UnicodeDecodeError):
        cid = None
    if not isinstance(cid, str):
        cid = None
    elif cid.startswith("k-"):  # unique per run, so an id the reply log kept from a previous run is no issue
        fresh = f"{cid}-{uuid.uuid4().hex[:8]}"
        payload, cid = payload.replace(cid.encode(), fresh.encode()), fresh
    case = Case(target, payload, cid, allowed, maybe_anonymous or cid is None, note=name)
    send_and_check(unit, [case])
    unit.check_alive_and_obedient()


@pytest.mark.parametrize(("module", "cmd"), [("pump1", "run"), ("pump2", "run")])
@pytest.mark.parametrize("seconds", [10**400, 10**4299, 1e308], ids=["10**400", "10**4299", "1e308"])
def test_a_huge_positive_length_is_refused_or_cut_at_max_on_s(unit: FuzzedUnit, module: str, cmd: str,
                                                            seconds: float) -> None:
    fuzzer = unit.fuzzer
    cid = str(uuid.uuid4())
    sent = time.monotonic()
    fuzzer.publish(f"lab/{UNIT}/{module}/cmd",
                   dumps({"id": cid, "cmd": cmd, "args": {"seconds": seconds}, "lease": fuzzer.token}))
    final = fuzzer.wait(lambda: [r for r in fuzzer.replies_to(cid) if r["status"] in ("done", "failed",
                                                                                       REJECTED)],
                        2 + REPLY_WAIT_S, f"the final answer to {cmd} of {str(seconds)[:12]}... s")[0]
    if final["status"] == REJECTED:
        assert final["error"]["kind"] == "validation" and final["error"]["param"] == "seconds", final
    else:  # accepted as a (very long) run: max_on_s (2 s) ends it
        assert final["status"] == "done" and final["result"].get("limited_by") == "max_on_s", final
        assert time.monotonic() - sent < 2 + 1.0, "the run outlived max_on_s"
        assert [r["status"] for r in fuzzer.replies_to(cid)] == ["accepted", "running", "done"]
    state = fuzzer.wait(lambda: (s := fuzzer.module_states()[module]) and s.get("lecis") == "IDLE" and s, 5,
                        f"{module} IDLE again")
    assert state["outputs"]["on"] is False
    unit.check_alive_and_obedient()


# No shrinking: each example is a round of 100 messages through a broker; a failing batch names its case.
@pytest.mark.timeout(120 + 2 * BATCHES)
@settings(max_examples=BATCHES, deadline=None, suppress_health_check=list(HealthCheck),
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(batch=st.lists(cases, min_size=BATCH, max_size=BATCH),
       replays=st.lists(st.integers(0, BATCH - 1), max_size=5))
def test_fuzzed_payloads_are_answered_by_the_contract_and_the_unit_obeys_estop(
        fuzzed: FuzzedUnit, batch: list[Case], replays: list[int]) -> None:
    fuzzed.ensure_healthy()
    send_and_check(fuzzed, batch, replays)
    fuzzed.check_alive_and_obedient()


@pytest.mark.parametrize("topic", [f"lab/{UNIT}/$cmd/cmd", f"lab/{UNIT}/$reply/cmd", f"lab/{UNIT}/PUMP1/cmd"])
def test_a_command_on_a_topic_outside_the_contract_is_not_carried_out(unit: FuzzedUnit, topic: str) -> None:
    """Unit commands come on `lab/U/$cmd`, module commands on `lab/U/<module id>/cmd`; nothing else."""
    cid = str(uuid.uuid4())
    case = Case("$cmd", dumps({"id": cid, "cmd": "STATUS"}), cid, frozenset({UNKNOWN}), note="STATUS",
                may_ignore=True, raw_topic=topic)
    send_and_check(unit, [case])  # ignored, or refused as unknown: never answered done


def test_an_id_from_an_earlier_batch_gets_its_earlier_answer(unit: FuzzedUnit) -> None:
    fuzzer = unit.fuzzer
    # An earlier batch of its own, one case per outcome, so the test stands alone (another worker
    # may run the fuzz); ids the fuzz answered in this process are checked as well.
    tag = uuid.uuid4().hex[:8]

    def case(name: str, target: str, body: dict[str, Any], outcome: Outcome) -> Case:
        cid = f"e-{name}-{tag}"
        return Case(target, dumps({"id": cid, **body}), cid, frozenset({outcome}), note=name)

    own = [case("status", "$cmd", {"cmd": "STATUS"}, DONE),
           case("unknown-command", "$cmd", {"cmd": "NOPE"}, UNKNOWN),
           case("on-without-the-lease", "pump1", {"cmd": "on"}, DENIED),
           case("ttl-not-a-number", "$cmd",
                {"cmd": "lease.acquire", "args": {"holder": "o", "ttl_s": "long"}}, VALIDATION)]
    send_and_check(unit, own)
    earlier = [(cid, reply) for cid, reply in fuzzer.answered.items() if is_plain_id(cid)]
    assert {c.cid for c in own} <= {cid for cid, _ in earlier}, "the unit did not answer the earlier batch"
    with fuzzer.lock:
        fuzzer.seen.replies.clear()
    for cid, first in earlier[:: max(1, len(earlier) // 20)]:
        # A different command with the same id, on the unit topic: answered from the log, not run.
        fuzzer.publish(f"lab/{UNIT}/$cmd", dumps({"id": cid, "cmd": "STATUS"}))
        again = fuzzer.wait(lambda cid=cid: fuzzer.replies_to(cid), REPLY_WAIT_S,  # type: ignore[misc]
                            f"the answer to {cid!r} again")
        assert (again[-1]["status"], again[-1]["error"]) == (first["status"], first["error"]), (again, first)
