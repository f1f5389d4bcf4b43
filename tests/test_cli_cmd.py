"""`labedge cmd`: a technician tests equipment without writing JSON, against a real unit and Mosquitto.

The unit runs in the test's event loop on mock pins (tests.system.inproc);
`labedge cmd` runs as its own process, as a person would type it.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from hub.unit_client import connected_client
from labedge.cmd import _print
from labedge.cmd_args import CmdUsageError, needs_lease, parse_args, parse_broker, parse_target, parse_value
from provisioning.broker import MosquittoProcess, free_port
from tests.rig import probe
from tests.system.inproc import running_unit
from tests.system.processes import LABEDGE

pytestmark = pytest.mark.system


async def cli(port: int, *args: str, timeout: float = 30.0) -> tuple[int, list[dict[str, Any]], str]:
    """Run `labedge cmd ... --broker 127.0.0.1:port`: (exit status, replies printed, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *LABEDGE, "cmd", *args, "--broker", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    assert b"Traceback" not in err, err.decode()
    return proc.returncode, [json.loads(line) for line in out.decode().splitlines()], err.decode()


async def test_run_prints_every_reply_and_gives_the_lease_back(mosquitto: MosquittoProcess,
                                                              tmp_path: Path) -> None:
    async with running_unit(tmp_path, "cmd-a", mosquitto.port) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "cmd-a", holder="tsc") as other:
        pin = rig.pin(17)
        pin.clear_states()
        code, replies, err = await cli(mosquitto.port, "cmd-a/pump1", "run", "seconds=0.3")
        assert code == 0, err
        assert replies[0]["status"] == "accepted"
        assert replies[-1]["status"] == "done"
        assert len({r["id"] for r in replies}) == 1
        assert [s.state for s in pin.states] == [0, 1, 0], "on for the run, then off"
        # The cli's lease is gone: another controller gets one at once.
        assert (await other.acquire())["status"] == "done"


async def test_values_are_typed_and_json_args_merge(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    async with running_unit(tmp_path, "cmd-b", mosquitto.port) as rig:
        code, replies, err = await cli(mosquitto.port, "cmd-b/pump1", "dose", "ml=0.25")
        assert code == 0, err
        assert replies[-1]["status"] == "done"
        code, replies, err = await cli(mosquitto.port, "cmd-b/pump1", "run", "--json", '{"seconds": 0.2}')
        assert code == 0, err
        code, replies, err = await cli(mosquitto.port, "cmd-b/pump1", "run", "seconds=fast")
        assert code == 3
        assert replies[-1]["error"]["kind"] == "validation" and replies[-1]["error"]["param"] == "seconds"
        assert "run rejected: validation (seconds)" in err
        assert rig.pin(17).state == 0


async def test_status_needs_no_lease_and_a_held_lease_is_named(mosquitto: MosquittoProcess,
                                                               tmp_path: Path) -> None:
    async with running_unit(tmp_path, "cmd-c", mosquitto.port) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "cmd-c", holder="tsc-7") as tsc:
        assert (await tsc.acquire(ttl_s=60))["status"] == "done"
        code, replies, err = await cli(mosquitto.port, "cmd-c", "STATUS")
        assert code == 0, err
        assert [r["status"] for r in replies] == ["done"]
        code, replies, err = await cli(mosquitto.port, "cmd-c/pump1", "on")
        assert code == 3
        assert replies[-1]["status"] == "rejected" and replies[-1]["error"]["kind"] == "denied"
        assert "no lease on cmd-c" in err and "tsc-7" in err
        assert rig.pin(17).state == 0
        # With the holder's token the command goes through, and the lease stays the holder's.
        assert tsc.token is not None
        code, replies, err = await cli(mosquitto.port, "cmd-c/valve1", "on", "--lease", tsc.token)
        assert code == 0, err
        assert rig.pin(27).state == 1
        renewed = await tsc.call(None, "lease.renew")
        assert renewed["status"] == "done", "the cli did not release a lease it was handed"


async def test_unknown_command_and_failed_command_exit_codes(mosquitto: MosquittoProcess,
                                                             tmp_path: Path) -> None:
    async with running_unit(tmp_path, "cmd-d", mosquitto.port) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "cmd-d", holder="estop") as other:
        code, replies, _ = await cli(mosquitto.port, "cmd-d/pump1", "spin")
        assert code == 3 and replies[-1]["error"]["kind"] == "unknown_command"
        proc = await asyncio.create_subprocess_exec(
            *LABEDGE, "cmd", "cmd-d/pump1", "run", "seconds=1.5", "--broker", f"127.0.0.1:{mosquitto.port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert first["status"] == "accepted"  # printed while the command runs, not at its end
        assert rig.pin(17).state == 1
        assert (await other.call(None, "ESTOP", lease=None))["status"] == "done"
        rest, err_bytes = await asyncio.wait_for(proc.communicate(), 20)
        final = json.loads(rest.decode().splitlines()[-1])
        assert final["status"] == "failed"
        assert proc.returncode == 1, err_bytes.decode()
        assert rig.pin(17).state == 0


async def test_no_reply_and_no_broker_have_their_own_exit_codes(mosquitto: MosquittoProcess) -> None:
    code, replies, err = await cli(mosquitto.port, "nobody-here", "STATUS", "--timeout", "1")
    assert code == 4 and replies == []
    assert "no final reply to STATUS" in err
    code, replies, err = await cli(free_port(), "nobody-here", "STATUS", timeout=15)
    assert code == 5 and replies == []
    assert err.startswith("labedge cmd: cannot reach the broker at 127.0.0.1:")


async def test_bad_arguments_exit_2_before_connecting() -> None:
    port = free_port()  # nothing listens: usage is checked first
    for args in (["Bench_1", "STATUS"], ["b1/Pump", "on"], ["b1/pump1", "run", "seconds"],
                 ["b1/pump1", "run", "--json", "[1]"]):
        code, replies, err = await cli(port, *args)
        assert code == 2 and replies == [], args
        assert err.startswith("labedge cmd: ") and len(err.splitlines()) == 1


@pytest.mark.parametrize("text, value", [
    ("5", 5), ("-3", -3), ("2.5", 2.5), ("1e3", 1000.0), (".5", 0.5), ("true", True), ("false", False),
    ("null", None), ('"5"', "5"), ("fast", "fast"), ("", ""), ("1" * 400, "1" * 400), ("inf", "inf"),
    ("nan", "nan"), ("1e999", "1e999"), ("on", "on"), ("a=b", "a=b"),
])
def test_values_are_read_as_a_technician_writes_them(text: str, value: Any) -> None:
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_arguments_targets_and_brokers() -> None:
    assert parse_args(["ml=2.5", "x=a=b"], '{"ml": 1, "list": [1, 2]}') == {"ml": 2.5, "x": "a=b",
                                                                            "list": [1, 2]}
    assert str(parse_target("bench-1/base_pump")) == "bench-1/base_pump"
    assert parse_target("bench-1").module is None
    assert parse_broker("hub") == ("hub", 1883)
    assert parse_broker("hub.lan:8883") == ("hub.lan", 8883)
    assert parse_broker("[::1]:1884") == ("::1", 1884)
    for bad in ("hub:", "hub:0", "hub:x", ":1883", "[::1"):
        with pytest.raises(CmdUsageError):
            parse_broker(bad)
    assert needs_lease("on") and needs_lease("CLEAR")
    assert not needs_lease("STATUS") and not needs_lease("ESTOP") and not needs_lease("lease.acquire")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_interrupted_cmd_gives_the_lease_back_and_the_pump_stops(mosquitto: MosquittoProcess,
                                                                       tmp_path: Path, sig: int) -> None:
    async with running_unit(tmp_path, "cmd-e", mosquitto.port) as rig, \
            probe("127.0.0.1", mosquitto.port) as found, \
            connected_client("127.0.0.1", mosquitto.port, "cmd-e", holder="next") as other:
        proc = await asyncio.create_subprocess_exec(
            *LABEDGE, "cmd", "cmd-e/pump1", "run", "seconds=1.9", "--broker", f"127.0.0.1:{mosquitto.port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))["status"] == "accepted"
        assert rig.pin(17).state == 1
        proc.send_signal(sig)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 130, err.decode()
        assert b"Traceback" not in err and b"interrupted" in err
        # Stopped by the lease given back (the loss policy), not by the end of the run.
        lost = await found.wait_for(lambda: [e for e in found.on("lab/cmd-e/pump1/event")
                                             if e["code"] == "controller_lost"], 10, "controller_lost")
        assert "cli" in lost[0]["message"]
        assert rig.pin(17).state == 0
        assert (await other.acquire())["status"] == "done", "the cli's lease is free"


def test_replies_print_as_one_json_line_even_with_a_lone_surrogate() -> None:
    out = io.StringIO()
    _print({"id": "a", "message": "18 °C"}, out)
    _print({"id": "\ud800"}, out)
    assert out.getvalue().splitlines() == ['{"id": "a", "message": "18 °C"}', '{"id": "\\ud800"}']
