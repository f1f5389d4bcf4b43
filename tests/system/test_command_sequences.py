"""Sequences of commands, lease changes and restarts: every limit holds, read from the pins' own history.

A hypothesis state machine drives a unit process through MQTT the way two
controllers would: on/off/run/dose/pulse, PAUSE/RESUME/ABORT, RESET, CLEAR,
ESTOP, lease acquire/release/expiry and takeover, stale tokens, ids sent
again, graceful restarts (SIGTERM) and crashes (SIGKILL), all on one data dir.
The unit's mock pins write every level they take to a file as it happens
(tests/system/processes.py `start_recorded_unit`), so the history survives a
crash; what the wiring does when a process dies (outputs float, the pull-down
holds them off) is added by the test at the moment of the kill.

After every step, from the pins' history alone:
- every on-stretch (on-time summed across off gaps shorter than the DCD's
  `min_off_s`) lasts at most `max_on_s` + TOL_S, and so does the on-time of
  each timed command, pauses included;
- the pump's volume (on-time x duty x ml_per_s) stays within
  `max_ml_per_hour` + TOL_S x ml_per_s (a run is far shorter than an hour, so
  "any rolling hour" is the whole history);
- an output turns on only while a command that may turn it on is under way,
  never after an ESTOP until CLEAR and a new command, never for a rejected or
  re-sent command;
- the pump (on_controller_loss: off) is off once its lease is released or
  expired, and before another controller holds the lease.
And from the replies: an id sent again gets its first final outcome, across
restarts too; every accepted command gets a final reply, after a restart
at the latest.

TOL_S (0.1 s) is the lateness allowed to a cut made by a timer in a process
on a loaded 2-core machine; the defects this hunts overshoot by whole
multiples of `max_on_s`. `LABEDGE_SEQ_EXAMPLES` and `LABEDGE_SEQ_STEPS` make
the run longer; `LABEDGE_SEQ_SHRINK=1` lets hypothesis shrink a failure.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from provisioning.broker import MosquittoProcess
from tests.system.inproc import write_equipment_unit
from tests.system.processes import read_pin_log, record_pins_released, start_recorded_unit, stop

pytestmark = pytest.mark.system

try:  # the driver's default gap that ends a stretch, where the tree has one
    from edge.drivers.gpio_output import DEFAULT_MIN_OFF_S
except ImportError:  # pragma: no cover - trees before min_off_s
    DEFAULT_MIN_OFF_S = 0.0
HAS_MIN_OFF = DEFAULT_MIN_OFF_S > 0

EXAMPLES = int(os.environ.get("LABEDGE_SEQ_EXAMPLES", "6"))
STEPS = int(os.environ.get("LABEDGE_SEQ_STEPS", "25"))
SHRINK = os.environ.get("LABEDGE_SEQ_SHRINK", "") == "1"

TOL_S = 0.1
ML_PER_S = 1.0
MAX_ML_PER_HOUR = 2.0
MAX_ON_S = {"pump1": 0.4, "valve1": 0.3}
MIN_OFF_S = {"pump1": 0.2, "valve1": DEFAULT_MIN_OFF_S}  # valve1: the default, from the DCD's absence
PIN = {"pump1": "GPIO17", "valve1": "GPIO27"}
LOSS_OFF = {"pump1"}  # on_controller_loss: off; valve1 holds
HOLDERS = ("tsc-a", "tsc-b")
TIMED = {"run", "dose", "pulse"}
ENABLING = {"on", "run", "dose", "pulse", "RESUME"}
FINAL = ("done", "failed", "rejected")
REPLY_S = 5.0
# A reply sent this shortly before a SIGKILL may not be on disk yet (docs/durable.md: one write
# batch, a few ms, at worst one fsync): its id may be forgotten. Headroom for a loaded machine.
KILL_WINDOW_S = 0.2

PUMP = f"""module: pump1
driver: gpio.pump
pin: 17
max_on_s: {MAX_ON_S['pump1']}
{'min_off_s: ' + str(MIN_OFF_S['pump1']) if HAS_MIN_OFF else ''}
ml_per_s: {ML_PER_S}
max_ml_per_hour: {MAX_ML_PER_HOUR}
pwm: true
on_controller_loss: "off"
"""
VALVE = f"""module: valve1
driver: gpio.switch
pin: 27
max_on_s: {MAX_ON_S['valve1']}
on_controller_loss: hold
"""
UNITS = itertools.count(1)


class Wire:
    """One outside MQTT client: sends commands, keeps every reply and retained state with its arrival time."""

    def __init__(self, port: int, unit: str) -> None:
        self.unit = unit
        self.cond = threading.Condition()
        self.replies: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"seq-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        for leaf in ("+/reply", "$reply", "$state", "+/state"):
            topic = f"lab/{unit}/{leaf}"
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        at = time.monotonic()
        payload = json.loads(message.payload)
        with self.cond:
            if message.topic.endswith("reply"):
                self.replies.setdefault(str(payload.get("id")), []).append((at, payload))
            else:
                self.latest[message.topic] = payload
            self.cond.notify_all()

    def send(self, target: str | None, body: dict[str, Any]) -> float:
        topic = f"lab/{self.unit}/$cmd" if target is None else f"lab/{self.unit}/{target}/cmd"
        at = time.monotonic()
        self.client.publish(topic, json.dumps(body), qos=1).wait_for_publish(REPLY_S)
        return at

    def wait(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (found := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
                self.cond.wait(min(left, 0.1))
            return found

    def reply_after(self, cid: str, index: int, final: bool, timeout: float = REPLY_S) -> tuple[float, dict]:
        def found() -> tuple[float, dict[str, Any]] | None:
            for at, reply in self.replies.get(cid, [])[index:]:
                if not final or reply["status"] in FINAL:
                    return at, reply
            return None

        result: tuple[float, dict[str, Any]] = self.wait(found, timeout, f"a reply to {cid}")
        return result

    def count(self, cid: str) -> int:
        with self.cond:
            return len(self.replies.get(cid, []))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Sent:
    cid: str
    target: str | None
    cmd: str
    body: dict[str, Any]
    sent_at: float
    first: tuple[float, dict[str, Any]] | None = None
    final: tuple[float, dict[str, Any]] | None = None
    cut_at: float | None = None  # the process died (or stopped) before a final reply came
    forgettable: bool = False  # answered just before a crash: the reply log may not have it yet

    @property
    def module(self) -> str | None:
        return self.target

    def enabling_window(self, now: float) -> tuple[float, float] | None:
        """When this command may have switched its output on, or None if it could not."""
        if self.cmd not in ENABLING or self.target is None:
            return None
        if self.first is not None and self.first[1]["status"] == "rejected":
            return None
        if self.cmd in TIMED:
            end = self.final[0] if self.final else (self.cut_at or now)
        else:
            end = self.first[0] if self.first else (self.cut_at or now)
        return self.sent_at, end + 0.05


def intervals(history: list[tuple[float, float]], now: float) -> list[tuple[float, float, float]]:
    """(start, end, level) of every stretch at a level above 0."""
    out = []
    for (t, level), (t_next, _) in zip(history, history[1:] + [(now, 0.0)], strict=True):
        if level > 0 and t_next > t:
            out.append((t, t_next, level))
    return out


def level_at(history: list[tuple[float, float]], at: float) -> float:
    level = 0.0
    for t, value in history:
        if t > at:
            break
        level = value
    return level


def stretches(on: list[tuple[float, float, float]], min_off_s: float) -> list[tuple[float, float, float]]:
    """(start, end, on-time) of stretches: on-intervals joined across gaps shorter than min_off_s."""
    out: list[list[float]] = []
    for start, end, _ in on:
        if out and start - out[-1][1] < min_off_s:
            out[-1][1] = end
            out[-1][2] += end - start
        else:
            out.append([start, end, end - start])
    return [(a, b, c) for a, b, c in out]


class UnitSequences(RuleBasedStateMachine):
    """Two controllers and a unit process; the model keeps only what the invariants need."""

    port = 0
    root = Path(tempfile.gettempdir())

    def __init__(self) -> None:
        super().__init__()
        self.unit = f"seq-{next(UNITS)}-{uuid.uuid4().hex[:4]}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.unit}-", dir=self.root))
        self.config = write_equipment_unit(self.tmp, self.unit, self.port, {"pump1": PUMP, "valve1": VALVE},
                                           extra="")
        self.pin_log = self.tmp / "pins.log"
        self.wire = Wire(self.port, self.unit)
        self.t0 = time.monotonic()
        self.sent: list[Sent] = []
        self.tokens: dict[str, str | None] = dict.fromkeys(HOLDERS)
        self.stale: list[str] = []
        self.holder: str | None = None
        self.estopped: dict[str, float | None] = dict.fromkeys(PIN)  # module -> ESTOP confirmed at
        self.estop_periods: list[tuple[str, float, float | None]] = []  # module, from, until CLEAR sent
        self.lease_lost_at: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.boot: str | None = None
        self._start()
        self._acquire("tsc-a", 30)

    # ---- the unit process ---------------------------------------------------------------------
    def _start(self) -> None:
        self.proc = start_recorded_unit(self.config, self.pin_log, self.tmp / "unit.log")
        before = self.boot

        def ready() -> dict[str, Any] | None:
            state = self.wire.latest.get(f"lab/{self.unit}/$state")
            return state if state and state["state"] == "ready" and state["boot"] != before else None

        try:
            self.boot = self.wire.wait(ready, 20, "the unit ready")["boot"]
        except AssertionError:
            raise AssertionError(f"unit did not come up:\n{self._log()}") from None

    def _log(self) -> str:
        return "\n".join((self.tmp / "unit.log").read_text(errors="replace").splitlines()[-20:])

    def _t(self, at: float) -> str:
        return f"t={at - self.t0:.3f}s"

    def teardown(self) -> None:
        try:
            if self.proc is not None:
                stop(self.proc)
        finally:
            self.wire.close()

    # ---- sending ------------------------------------------------------------------------------
    def _send(self, target: str | None, cmd: str, args: dict[str, Any] | None = None,
              token: str | bool | None = True, final: bool = True) -> Sent:
        lease = self.tokens.get(self.holder or "") if token is True else (token or None)
        body: dict[str, Any] = {"id": str(uuid.uuid4()), "cmd": cmd, "args": args or {}}
        if lease:
            body["lease"] = lease
        sent = Sent(body["id"], target, cmd, body, 0.0)
        self.sent.append(sent)
        sent.sent_at = self.wire.send(target, body)
        sent.first = self.wire.reply_after(sent.cid, 0, final=False)
        if sent.first[1]["status"] in FINAL:
            sent.final = sent.first
        elif final:
            sent.final = self.wire.reply_after(sent.cid, 0, final=True, timeout=REPLY_S + 2)
        return sent

    def _collect_finals(self, timeout: float = 0.0) -> None:
        for sent in self.sent:
            if sent.final is None and sent.first is not None:
                got = [(at, r) for at, r in self.wire.replies.get(sent.cid, []) if r["status"] in FINAL]
                if got:
                    sent.final = got[0]

    def _acquire(self, holder: str, ttl: float) -> Sent:
        sent = self._send(None, "lease.acquire", {"holder": holder, "ttl_s": ttl}, token=None)
        assert sent.final is not None
        status, reply = sent.final[1]["status"], sent.final[1]
        if self.holder is None or self.holder == holder:
            assert status == "done", f"lease.acquire by {holder} with no other holder: {reply}"
        else:
            assert status == "rejected" and reply["error"]["kind"] == "denied", \
                f"lease.acquire by {holder} while {self.holder} holds it: {reply}"
        if status == "done":
            if self.holder is not None and self.holder != holder:
                raise AssertionError(f"{holder} got the lease while {self.holder} held it")
            old = self.tokens.get(holder)
            if old:
                self.stale.append(old)
            self.tokens[holder] = reply["result"]["token"]
            self.holder = holder
        return sent

    def _pump_off_by(self, deadline: float, why: str) -> None:
        """The pump (on_controller_loss: off) is off by `deadline`, from its pin history."""
        while time.monotonic() < deadline + 0.05:
            time.sleep(0.02)
        history = read_pin_log(self.pin_log).get(PIN["pump1"], [])
        assert level_at(history, deadline) == 0.0, \
            f"pump1 still on at {self._t(deadline)} {why} (on_controller_loss: off)"

    # ---- rules: device commands ---------------------------------------------------------------
    @rule(module=st.sampled_from(sorted(PIN)), cmd=st.sampled_from(["on", "off", "timed"]),
          seconds=st.floats(0.05, 1.2), speed=st.sampled_from([None, 0.5, 1.0]))
    def device(self, module: str, cmd: str, seconds: float, speed: float | None) -> None:
        self._device(module, cmd, seconds, speed)

    @rule(module=st.sampled_from(sorted(PIN)),
          ops=st.lists(st.tuples(st.sampled_from(["on", "off", "timed", "PAUSE", "RESUME", "ABORT"]),
                                 st.floats(0.05, 1.2), st.sampled_from([0.0, 0.0, 0.05, 0.15, 0.3])),
                       min_size=2, max_size=6))
    def burst(self, module: str, ops: list[tuple[str, float, float]]) -> None:
        """Commands in quick succession on one module: back-to-back off/on, PAUSE/RESUME inside a run."""
        if self.holder is None:
            self._acquire(HOLDERS[len(self.sent) % 2], 30)
        for cmd, seconds, pause in ops:
            if cmd in ("PAUSE", "RESUME", "ABORT"):
                self._standard(module, cmd)
            else:
                self._device(module, cmd, seconds, None)
            time.sleep(pause)

    def _device(self, module: str, cmd: str, seconds: float, speed: float | None) -> None:
        args: dict[str, Any] = {}
        if cmd == "timed":
            cmd = "pulse" if module == "valve1" else ("dose" if seconds < 0.45 else "run")
            args = {"ml": round(seconds * (speed or 1.0), 3)} if cmd == "dose" else {"seconds": seconds}
        if module == "pump1" and speed is not None and cmd != "off":
            args["speed"] = speed
        sent = self._send(module, cmd, args, final=False)
        assert sent.first is not None
        reply = sent.first[1]
        if os.environ.get("LABEDGE_SEQ_VERBOSE"):
            print(f"  {module} {cmd} {args} -> {reply['status']} {reply['error']}")
        if self.holder is None:
            assert reply["status"] == "rejected" and reply["error"]["kind"] == "denied", \
                f"{cmd} without a lease: {reply}"
        elif self.estopped[module] is not None:
            assert reply["status"] == "rejected" and reply["error"]["kind"] == "state", \
                f"{cmd} to {module} after ESTOP (no CLEAR since): {reply}"

    def _standard(self, module: str, cmd: str) -> None:
        sent = self._send(module, cmd)
        assert sent.final is not None
        if self.estopped[module] is not None and cmd == "RESUME":
            assert sent.final[1]["status"] == "rejected", f"RESUME after ESTOP: {sent.final[1]}"

    @rule(kind=st.sampled_from(["ESTOP", "ESTOP", "CLEAR", "CLEAR", "RESET"]),
          where=st.sampled_from([None, None, "pump1", "valve1"]))
    def safety(self, kind: str, where: str | None) -> None:
        if kind == "ESTOP":
            self._estop(where)
        elif kind == "CLEAR":
            self._clear()
        else:
            self._reset(where)

    def _reset(self, where: str | None) -> None:
        self._send(where, "RESET")
        # A RESET in ESTOPPED comes back ESTOPPED (only CLEAR releases it): the model's latch stays.
        # Back up: device commands before the module is IDLE again may be refused by state.
        self.wire.wait(lambda: all(self.wire.latest.get(f"lab/{self.unit}/{m}/state", {}).get("lecis")
                                   in ("IDLE", "ESTOPPED", "ERROR") for m in PIN), REPLY_S,
                       "modules back after RESET")

    def _estop(self, where: str | None) -> None:
        sent = self._send(where, "ESTOP", token=None)
        assert sent.final is not None
        at, reply = sent.final
        assert reply["status"] == "done", f"ESTOP: {reply}"
        history = read_pin_log(self.pin_log)
        for module in [where] if where else sorted(PIN):
            assert level_at(history.get(PIN[module], []), at) == 0.0, \
                f"{module} still on when the ESTOP reply arrived ({self._t(at)})"
            if self.estopped[module] is None:
                self.estopped[module] = at
                self.estop_periods.append((module, at, None))

    def _clear(self) -> None:
        sent = self._send(None, "CLEAR")
        assert sent.final is not None
        if sent.final[1]["status"] == "done":
            self._end_estop(sent.sent_at)

    def _end_estop(self, at: float) -> None:
        self.estop_periods = [(m, a, b if b is not None else at) for m, a, b in self.estop_periods]
        self.estopped = dict.fromkeys(PIN)

    @rule(seconds=st.floats(0.05, 0.6))
    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    # ---- rules: the lease ---------------------------------------------------------------------
    @rule(kind=st.sampled_from(["acquire", "release", "expire"]), holder=st.sampled_from(HOLDERS),
          gap=st.floats(0.0, 0.1), takeover=st.booleans(), pump_on=st.booleans())
    def lease(self, kind: str, holder: str, gap: float, takeover: bool, pump_on: bool) -> None:
        """The lease changes hands; with `pump_on` the pump runs when it ends (the loss policy matters)."""
        if kind == "acquire" or self.holder is None:
            self._acquire_rule(holder)
        elif kind == "release":
            if pump_on:
                self._device("pump1", "on", 0.0, None)
            self._release()
        else:
            self._expire(gap, takeover, pump_on)

    def _acquire_rule(self, holder: str) -> None:
        previous = self.holder
        sent = self._acquire(holder, 30)
        assert sent.final is not None
        if previous is None and self.lease_lost_at is not None and sent.final[1]["status"] == "done":
            # The loss policy comes before any new holder's token.
            self._pump_off_by(sent.final[0], f"when {holder} was granted the lease after a loss")
            self.lease_lost_at = None

    def _release(self) -> None:
        sent = self._send(None, "lease.release")
        assert sent.final is not None
        assert sent.final[1]["status"] == "done", f"lease.release by the holder: {sent.final[1]}"
        self.stale.append(self.tokens[self.holder or ""] or "")
        self.tokens[self.holder or ""] = None
        self.holder = None
        self.lease_lost_at = sent.final[0]
        self._pump_off_by(sent.final[0] + 0.2, "0.2 s after lease.release")

    def _expire(self, gap: float, takeover: bool, pump_on: bool) -> None:
        """The holder shortens its lease to 0.3 s and goes quiet; maybe the other one polls at once."""
        holder = self.holder or ""
        sent = self._acquire(holder, 0.3)
        assert sent.final is not None and sent.final[1]["status"] == "done"
        if pump_on:  # an accepted command extends the lease by its ttl: it now ends 0.3 s after this one
            sent = self._send("pump1", "on")
            assert sent.final is not None
        expires = sent.final[0] + 0.3
        self.stale.append(self.tokens[holder] or "")
        self.tokens[holder] = None
        self.holder = None
        time.sleep(max(0.0, expires - time.monotonic()) + gap)
        self.lease_lost_at = expires
        if takeover:
            self._acquire_rule(next(h for h in HOLDERS if h != holder))
        else:
            self._pump_off_by(expires + 1.0, "a second after the lease expired")

    @precondition(lambda self: bool(self.stale))
    @rule(module=st.sampled_from(sorted(PIN)), pick=st.integers(0, 1000))
    def stale_token(self, module: str, pick: int) -> None:
        token = self.stale[pick % len(self.stale)]
        sent = self._send(module, "on", token=token)
        assert sent.final is not None
        assert sent.final[1]["status"] == "rejected" and sent.final[1]["error"]["kind"] == "denied", \
            f"on with a stale lease token: {sent.final[1]}"

    # ---- rules: ids again, restarts -----------------------------------------------------------
    @precondition(lambda self: any(s.final and not s.forgettable for s in self.sent))
    @rule(pick=st.integers(0, 10_000))
    def send_again(self, pick: int) -> None:
        """An id sent again is answered with its first final outcome and moves nothing."""
        done = [s for s in self.sent if s.final and not s.forgettable]
        original = done[pick % len(done)]
        assert original.final is not None
        index = self.wire.count(original.cid)
        self.wire.send(original.target, original.body)
        _, again = self.wire.reply_after(original.cid, index, final=False)
        first = original.final[1]
        assert (again["status"], again["error"], again["result"]) == \
            (first["status"], first["error"], first["result"]), \
            f"{original.cmd} {original.cid} sent again: {again}, first final answer was {first}"

    @rule(kill=st.booleans(), running=st.sampled_from([None, "on", "timed"]), after=st.floats(0.0, 0.3))
    def restart(self, kill: bool, running: str | None, after: float) -> None:
        """Stop (SIGTERM) or crash (SIGKILL) the process, maybe while the pump runs; a new one on the
        same data dir and wiring."""
        assert self.proc is not None
        if running is not None and self.holder is not None:
            self._device("pump1", running, 1.0, None)
            time.sleep(after)
        self._collect_finals()
        if kill:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            record_pins_released(self.pin_log, list(PIN.values()))
        else:
            code = stop(self.proc)
            assert code == 0, f"unit exited {code} on SIGTERM:\n{self._log()}"
        cut = time.monotonic()
        for sent in self.sent:
            if sent.final is None:
                sent.cut_at = cut
            elif kill and sent.final[0] > cut - KILL_WINDOW_S:
                sent.forgettable = True  # within the window a crash may cost the reply log
        self._end_estop(cut)
        self._start()
        # Every command that was under way gets its final answer from the new process.
        pending = [s for s in self.sent if s.final is None and s.first is not None]
        for sent in pending:
            sent.final = self.wire.reply_after(sent.cid, 0, final=True, timeout=3.0)
        holder = self.holder
        if holder is not None:
            self.holder = None
            self._acquire(holder, 30)
        elif self.lease_lost_at is not None:
            self.lease_lost_at = None  # the process is new: its outputs are off

    # ---- invariants from the pins --------------------------------------------------------------
    @invariant()
    def limits_hold_in_the_pin_history(self) -> None:
        now = time.monotonic()
        self._collect_finals()
        history = read_pin_log(self.pin_log)
        assert now - self.t0 < 3600, "the volume check assumes a run shorter than an hour"
        for module, pin in PIN.items():
            on = intervals(history.get(pin, []), now)
            for start, end, total in stretches(on, MIN_OFF_S[module]):
                assert total <= MAX_ON_S[module] + TOL_S, (
                    f"{module} was on {total:.3f} s in one stretch ({self._t(start)} to {self._t(end)}, "
                    f"off gaps under min_off_s={MIN_OFF_S[module]:g} s joined); max_on_s is "
                    f"{MAX_ON_S[module]:g}")
            for sent in self.sent:
                if sent.target != module or sent.cmd not in TIMED:
                    continue
                end = sent.final[0] if sent.final else (sent.cut_at or now)
                ran = sum(min(b, end) - a for a, b, _ in on if sent.sent_at <= a < end)
                assert ran <= MAX_ON_S[module] + TOL_S, (
                    f"{sent.cmd} {sent.body['args']} on {module} kept it on {ran:.3f} s in one command "
                    f"(pauses included); max_on_s is {MAX_ON_S[module]:g}")
            windows = [w for s in self.sent if s.target == module and (w := s.enabling_window(now))]
            for start, _, _ in on:
                if level_at(history[pin], start - 1e-6) > 0:
                    continue  # a speed change, not a switch-on
                assert any(a <= start <= b for a, b in windows), (
                    f"{module} switched on at {self._t(start)} with no accepted command under way "
                    "that may switch it on")
            for estopped, since, until in self.estop_periods:
                if estopped != module:
                    continue
                for start, _, _ in on:
                    assert not (since <= start <= (until or now)), (
                        f"{module} switched on at {self._t(start)}, after the ESTOP of {self._t(since)} "
                        "and before a CLEAR")
        pump = intervals(history.get(PIN["pump1"], []), now)
        pumped = sum((b - a) * level * ML_PER_S for a, b, level in pump)
        assert pumped <= MAX_ML_PER_HOUR + TOL_S * ML_PER_S, (
            f"pump1 pumped {pumped:.3f} ml within an hour; max_ml_per_hour is {MAX_ML_PER_HOUR:g}")


@pytest.mark.timeout(120 + 30 * EXAMPLES * STEPS // 20)
def test_command_sequences_keep_every_limit(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    UnitSequences.port = mosquitto.port
    UnitSequences.root = tmp_path
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if SHRINK else [])
    run_state_machine_as_test(UnitSequences, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, phases=phases,
        suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
        verbosity=Verbosity.verbose if os.environ.get("LABEDGE_SEQ_VERBOSE") else Verbosity.normal))
