"""The unit's safety core against a unit process, over MQTT: hostile payloads, a full disk, lease ends."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest

from hub.unit_client import UnitClient, connected_client
from provisioning.broker import MosquittoProcess
from tests.rig import Probe, Seen, probe
from tests.system.inproc import PUMP, VALVE, running_unit, write_equipment_unit
from tests.system.processes import LABEDGE, start_unit, stop

pytestmark = pytest.mark.system

BIG = "9" * 400  # an integer no float can hold: math.isfinite raises OverflowError on it
SLOW_PUMP = PUMP.replace("max_on_s: 2", "max_on_s: 60")


def _ignore_sigxfsz() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead


@contextlib.contextmanager
def unit_process(config: Path, log: Path, piped: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """A unit process; `piped` sends its output through a pipe, which RLIMIT_FSIZE does not limit."""
    if not piped:
        proc = start_unit(config, log)
    else:
        proc = subprocess.Popen([*LABEDGE, "edge", "run", "--config", str(config), "--pin-factory", "mock"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_ignore_sigxfsz,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        out = proc.stdout
        assert out is not None

        def copy() -> None:
            with log.open("ab") as sink:
                for line in out:
                    sink.write(line)
                    sink.flush()

        threading.Thread(target=copy, daemon=True).start()
    try:
        yield proc
    finally:
        stop(proc)


@contextlib.asynccontextmanager
async def unit_and_clients(tmp: Path, name: str, port: int, dcds: dict[str, str], piped: bool = False
                           ) -> AsyncIterator[tuple[subprocess.Popen[bytes], Probe, UnitClient]]:
    config = write_equipment_unit(tmp, name, port, dcds, extra="")
    with unit_process(config, tmp / "unit.log", piped) as proc:
        async with probe("127.0.0.1", port, pattern=f"lab/{name}/#") as found, \
                connected_client("127.0.0.1", port, name, holder="tsc") as ctl:
            await found.wait_for(lambda: (s := found.last(f"lab/{name}/$state")) and s["state"] == "ready",
                                 20, f"{name} ready")
            yield proc, found, ctl


async def seen_after(found: Probe, start: int, match: Callable[[Seen], bool], what: str,
                     timeout: float = 5.0) -> list[Seen]:
    """Wait for messages after index `start` that `match`; returns everything seen after `start`."""
    await found.wait_for(lambda: any(match(m) for m in found.messages[start:]), timeout, what)
    return found.messages[start:]


async def still_obeys(found: Probe, ctl: UnitClient, name: str, after: str) -> None:
    status = await ctl.call(None, "STATUS", lease=None, timeout=5)
    assert status["status"] == "done", f"STATUS after {after}: {status}"


def hostile_payloads(token: str) -> list[tuple[str, bytes, str | None, str | None]]:
    """(target, raw payload, id expected in the reply, param expected) for every item-1 payload."""
    lease = f'"lease":"{token}"'
    return [
        ("$cmd", rb'{"id":"\ud800","cmd":"STATUS"}', None, "id"),
        ("pump1", rb'{"id":"\ud800","cmd":"STATUS"}', None, "id"),
        ("$cmd", rb'{"id":"h-cmd","cmd":"\udfff"}', "h-cmd", "cmd"),
        ("$cmd", rb'{"id":"h-lease","cmd":"STATUS","lease":"\ud800"}', "h-lease", "lease"),
        ("pump1", rb'{"id":"h-key","cmd":"on","args":{"\ud800":1}}', "h-key", "args"),
        ("pump1", rb'{"id":"h-nested","cmd":"run","args":{"seconds":[{"x":"\ud83d"}]}}', "h-nested",
         "seconds"),
        ("$cmd", rb'{"id":"h-extra","cmd":"STATUS","note":{"\udc00":"x"}}', "h-extra", "note"),
        ("$cmd", rb'{"id":"h-holder","cmd":"lease.acquire","args":{"holder":"\ud800","ttl_s":5}}',
         "h-holder", "holder"),
        ("$cmd", b'{"id":"h-print","cmd":"lease.acquire","args":{"holder":"a\\u0007b","ttl_s":5}}',
         "h-print", "holder"),
        ("$cmd", f'{{"id":"h-ttl","cmd":"lease.acquire","args":{{"holder":"x","ttl_s":{BIG}}}}}'.encode(),
         "h-ttl", "ttl_s"),
        ("pump1", f'{{"id":"h-run","cmd":"run","args":{{"seconds":{BIG}}},{lease}}}'.encode(), "h-run",
         "seconds"),
        ("pump1", f'{{"id":"h-neg","cmd":"run","args":{{"seconds":-{BIG}}},{lease}}}'.encode(), "h-neg",
         "seconds"),
        ("pump1", f'{{"id":"h-dose","cmd":"dose","args":{{"ml":{BIG}}},{lease}}}'.encode(), "h-dose", "ml"),
        ("valve1", f'{{"id":"h-pulse","cmd":"pulse","args":{{"seconds":{BIG}}},{lease}}}'.encode(),
         "h-pulse", "seconds"),
        ("$cmd", b'{"id":"h-deep","cmd":"STATUS","args":' + b"[" * 5000 + b"]" * 5000 + b"}", None, None),
    ]


async def test_no_hostile_payload_cuts_the_unit_off(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    name = "hard-a"
    async with unit_and_clients(tmp_path, name, mosquitto.port, {"pump1": SLOW_PUMP, "valve1": VALVE}) as (
            proc, found, ctl), \
            aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hostile") as raw:
        assert (await ctl.acquire(ttl_s=300))["status"] == "done"
        assert ctl.token is not None
        for target, payload, expected_id, param in hostile_payloads(ctl.token):
            topic = f"lab/{name}/$cmd" if target == "$cmd" else f"lab/{name}/{target}/cmd"
            reply_topic = f"lab/{name}/$reply" if target == "$cmd" else f"lab/{name}/{target}/reply"
            start = len(found.messages)
            await raw.publish(topic, payload, qos=1)
            def is_reply(m: Seen, topic: str = reply_topic, wanted: str | None = expected_id) -> bool:
                return m.topic == topic and m.payload["id"] == wanted

            seen = await seen_after(found, start, is_reply, f"a reply to {payload[:60]!r}")
            reply = next(m.payload for m in seen if is_reply(m))
            assert reply["status"] == "rejected", (payload[:60], reply)
            assert reply["error"]["kind"] == "validation", (payload[:60], reply)
            assert reply["error"]["param"] == param, (payload[:60], reply)
            await still_obeys(found, ctl, name, repr(payload[:60]))
        assert found.last(f"lab/{name}/$state")["state"] == "ready"
        assert (await ctl.call("pump1", "on"))["status"] == "done"
        assert (await ctl.call(None, "ESTOP", lease=None))["status"] == "done"
        state = await found.wait_for(
            lambda: (s := found.module_state(name, "pump1")) and s["lecis"] == "ESTOPPED" and s, 5,
            "pump1 ESTOPPED")
        assert state["outputs"]["on"] is False
        unit_side = [v for v in found.violations if not v.split(":")[0].endswith("cmd")]
        assert unit_side == [], "everything the unit sent follows the contract"
        assert proc.poll() is None


async def test_a_full_disk_costs_records_never_the_loss_policy(mosquitto: MosquittoProcess,
                                                               tmp_path: Path) -> None:
    name = "hard-b"
    # valve1 (hold) comes first: its alarm is the first record to fail, before pump1's policy runs.
    async with unit_and_clients(tmp_path, name, mosquitto.port, {"valve1": VALVE, "pump1": SLOW_PUMP},
                                piped=True) as (proc, found, ctl):
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, hard))  # no file of the unit may grow now
        def pump_on(m: Seen) -> bool | None:
            return m.payload["outputs"].get("on") if m.topic == f"lab/{name}/pump1/state" else None

        for trial in range(2):  # the second lease proves the lease timer survived the first loss
            assert (await ctl.acquire(ttl_s=1))["status"] == "done"
            before = len(found.messages)
            assert (await ctl.call("valve1", "on"))["status"] == "done"
            assert (await ctl.call("pump1", "on"))["status"] == "done"
            last_command_at = time.monotonic()
            await seen_after(found, before, lambda m: pump_on(m) is True, "pump1 on")
            await seen_after(found, before, lambda m: pump_on(m) is False,
                             f"pump1 off after the lease expired on a full disk (trial {trial})")
            assert time.monotonic() - last_command_at < 1 + 1, "off within ttl + 1 s"
            assert found.module_state(name, "valve1")["outputs"]["on"] is True, "valve1 holds"
            await still_obeys(found, ctl, name, "a lease lost on a full disk")
        assert proc.poll() is None
    assert "disk I/O error" in (tmp_path / "unit.log").read_text(), "the disk did refuse the unit's writes"


async def test_standby_polling_never_gets_the_lease_before_the_policy(mosquitto: MosquittoProcess,
                                                                      tmp_path: Path) -> None:
    name = "hard-c"
    async with unit_and_clients(tmp_path, name, mosquitto.port, {"pump1": SLOW_PUMP}) as (_, found, holder), \
            connected_client("127.0.0.1", mosquitto.port, name, holder="standby") as standby:
        state_topic, reply_topic = f"lab/{name}/pump1/state", f"lab/{name}/$reply"
        for trial in range(15):
            holder.holder = lost = f"tsc-{trial}"
            assert (await holder.acquire(ttl_s=0.3))["status"] == "done"
            start = len(found.messages)
            assert (await holder.call("pump1", "on"))["status"] == "done"
            while True:  # a tight loop, as a standby controller waiting to take over would
                granted = await standby.acquire(ttl_s=30)
                if granted["status"] == "done":
                    break
                assert granted["error"]["kind"] == "denied"

            def is_grant(m: Seen, grant_id: str = granted["id"]) -> bool:
                return m.topic == reply_topic and m.payload["id"] == grant_id

            seen = await seen_after(found, start, is_grant, "the grant on the wire")
            grant_at = next(i for i, m in enumerate(seen) if is_grant(m))
            off_at = [i for i, m in enumerate(seen)
                      if m.topic == state_topic and m.payload["outputs"].get("on") is False]
            assert off_at and off_at[0] < grant_at, f"trial {trial}: pump1 off before the new token"

            def names_lost(m: Seen, holder_name: str = lost) -> bool:
                return (m.topic == f"lab/{name}/pump1/event" and m.payload["code"] == "controller_lost"
                        and f"'{holder_name}'" in m.payload["message"])

            await seen_after(found, start, names_lost, f"controller_lost alarm naming {lost}")
            assert (await standby.call(None, "lease.release"))["status"] == "done"


async def test_unit_reset_answers_done_once_modules_are_back_and_keeps_estop(mosquitto: MosquittoProcess,
                                                                             tmp_path: Path) -> None:
    async with running_unit(tmp_path, "hard-d", mosquitto.port) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "hard-d") as ctl:
        await ctl.acquire()
        reset = await ctl.call(None, "RESET")
        assert [r["status"] for r in ctl.replies[reset["id"]]] == ["accepted", "done"]
        assert reset["result"]["modules"] == {"pump1": "IDLE", "valve1": "IDLE"}
        assert (await ctl.call(None, "ESTOP", lease=None))["status"] == "done"
        reset = await ctl.call(None, "RESET")
        assert [r["status"] for r in ctl.replies[reset["id"]]] == ["accepted", "done"]
        assert reset["result"]["modules"] == {"pump1": "ESTOPPED", "valve1": "ESTOPPED"}, \
            "RESET keeps the ESTOP latched"
        assert (await ctl.call("pump1", "on"))["error"]["kind"] == "state"
        assert rig.pin(17).state == 0
        assert (await ctl.call(None, "CLEAR"))["status"] == "done"
        assert {m.state.value for m in rig.unit.modules.values()} == {"IDLE"}
