"""The simulators over real pseudo-terminals, seen by a pyserial-asyncio client as a driver sees them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import serial
import serial_asyncio

from lecis.clock import ScaledClock
from sim.ezo_device import EzoSimulator
from sim.faults import FaultPlan

REPO = Path(__file__).resolve().parents[2]


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, text: str) -> None:
        self.writer.write((text + "\r").encode("ascii"))

    async def line(self, timeout: float = 3.0) -> str:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r"), timeout)
        return raw[:-1].decode("ascii", errors="replace")

    async def ask(self, text: str) -> list[str]:
        """Send a command; the lines up to and including its `*OK` or `*ER`."""
        self.send(text)
        lines = [await self.line()]
        while lines[-1] not in ("*OK", "*ER"):
            lines.append(await self.line())
        return lines

    async def until_quiet(self, quiet_s: float = 0.5) -> bytes:
        """Every byte that arrives until none has for `quiet_s`."""
        data = b""
        with contextlib.suppress(TimeoutError):
            while True:
                data += await asyncio.wait_for(self.reader.read(4096), quiet_s)
        return data


@contextlib.asynccontextmanager
async def client(port: str) -> AsyncIterator[Client]:
    reader, writer = await serial_asyncio.open_serial_connection(url=port, baudrate=9600)
    try:
        yield Client(reader, writer)
    finally:
        with contextlib.suppress(Exception):  # the port may be gone already: that is what some tests do
            writer.close()


async def until(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


# ---- the protocol over a pty ----------------------------------------------------------------

async def test_read_gives_a_data_line_then_ok_after_the_reading_time(tmp_path: Path) -> None:
    async with EzoSimulator("ph", tmp_path / "ph1", continuous=False) as sim:
        assert sim.port == str(tmp_path / "ph1")
        assert os.readlink(sim.port).startswith("/dev/pts/")
        async with client(sim.port) as c:
            assert await c.line() == "*RE"  # the circuit's boot line reaches the first client
            started = time.monotonic()
            c.send("R")
            reading = await c.line()
            took = time.monotonic() - started
            assert await c.line() == "*OK"
        assert re.fullmatch(r"\d+\.\d{3}", reading) and 6.0 < float(reading) < 8.0
        assert 0.85 <= took < 2.0
        assert sim.commands_seen == ["R"]


async def test_continuous_readings_arrive_unasked_until_c0(tmp_path: Path) -> None:
    async with EzoSimulator("do", tmp_path / "do1", clock=ScaledClock(10.0)) as sim:
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
            for _ in range(3):
                assert re.fullmatch(r"\d+\.\d\d", await c.line(timeout=1.0))
            assert (await c.ask("c,0"))[-1] == "*OK"
            assert await c.until_quiet(0.4) == b""
            assert await c.ask("O,%,1") == ["*OK"]
            reading, ok = await c.ask("R")
            assert re.fullmatch(r"\d+\.\d\d,\d+\.\d", reading) and ok == "*OK"


async def test_sleep_then_any_byte_wakes_it_and_that_line_is_lost(tmp_path: Path) -> None:
    async with EzoSimulator("ph", tmp_path / "ph1", continuous=False, clock=ScaledClock(10.0)) as sim:
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
            c.send("Sleep")
            assert await c.line() == "*SL"
            c.writer.write(b"F")
            assert await c.line() == "*WA"
            c.writer.write(b"actory\r")  # the rest of the waking line: not obeyed, not refused
            assert await c.ask("i") == ["?i,pH,2.16", "*OK"]
            status, ok = await c.ask("Status")
            assert status.startswith("?Status,P,") and ok == "*OK"  # no factory reset happened


async def test_commands_tolerate_newlines_and_answer_er_to_nonsense(tmp_path: Path) -> None:
    async with EzoSimulator("rtd", tmp_path / "rtd1", continuous=False, clock=ScaledClock(10.0)) as sim:
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
            c.writer.write(b"S,f\r\nName,bath\nName,?\r")
            assert [await c.line() for _ in range(4)] == ["*OK", "*OK", "?Name,bath", "*OK"]
            assert await c.ask("Volume,?") == ["*ER"]
            assert sim.commands_seen == ["S,f", "Name,bath", "Name,?", "Volume,?"]


async def test_rtd_probe_detached_reads_minus_1023(tmp_path: Path) -> None:
    async with EzoSimulator("rtd", tmp_path / "rtd1", continuous=False, clock=ScaledClock(10.0)) as sim:
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
            sim.detach_probe()
            assert await c.ask("R") == ["-1023.000", "*OK"]
            sim.attach_probe()
            reading, _ = await c.ask("R")
            assert 15.0 < float(reading) < 25.0
    with pytest.raises(ValueError, match="rtd"):
        EzoSimulator("ph", tmp_path / "ph1").detach_probe()


# ---- unplugging -------------------------------------------------------------------------------

async def test_disconnect_fails_the_clients_read_and_removes_the_link(tmp_path: Path) -> None:
    async with EzoSimulator("ph", tmp_path / "ph1", continuous=False) as sim:
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
            waiting = asyncio.ensure_future(c.line(timeout=5.0))
            await asyncio.sleep(0)
            await sim.disconnect()
            with pytest.raises(serial.SerialException):
                await waiting
        assert not os.path.lexists(sim.port)
        assert not sim.connected


async def test_reconnect_brings_the_path_back_with_re(tmp_path: Path) -> None:
    async with EzoSimulator("do", tmp_path / "do1", continuous=False, clock=ScaledClock(10.0)) as sim:
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
            assert await c.ask("Name,tank2") == ["*OK"]
        await sim.disconnect()
        await sim.reconnect()
        assert os.readlink(sim.port).startswith("/dev/pts/")
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
            assert await c.ask("Name,?") == ["?Name,tank2", "*OK"]  # kept across the power cut
    assert not os.path.lexists(tmp_path / "do1")


# ---- faults -------------------------------------------------------------------------------------

async def _faulty_session(link: Path, plan: FaultPlan) -> tuple[bytes, list[str]]:
    async with EzoSimulator("ph", link, faults=plan, continuous=False, clock=ScaledClock(20.0)) as sim:
        async with client(sim.port) as c:
            first = await asyncio.wait_for(c.reader.read(4096), 3.0)  # the boot line, perhaps mangled
            for _ in range(20):
                c.send("i")
            return first + await c.until_quiet(), list(sim.faults_injected)


async def test_garbage_and_partial_lines_appear_and_repeat_with_the_seed(tmp_path: Path) -> None:
    plan = FaultPlan.parse("garbage,partial", rate=0.3, seed=11, partial_late_s=0.5)
    seen, injected = await _faulty_session(tmp_path / "a", plan)
    clean = b"*RE\r" + b"?i,pH,2.16\r*OK\r" * 20
    assert seen != clean
    assert any(b >= 0x80 or (b < 0x20 and b != 0x0D) for b in seen), "no line noise reached the client"
    assert any(f.startswith("garbage") for f in injected) and any(f.startswith("partial") for f in injected)
    assert await _faulty_session(tmp_path / "b", plan) == (seen, injected)
    other = FaultPlan.parse("garbage,partial", rate=0.3, seed=12, partial_late_s=0.5)
    assert (await _faulty_session(tmp_path / "c", other))[1] != injected


async def test_silence_leaves_commands_unanswered(tmp_path: Path) -> None:
    plan = FaultPlan.parse("silence", rate=1.0, seed=1, silence_s=30.0)
    async with EzoSimulator("ph", tmp_path / "ph1", faults=plan, continuous=False) as sim:
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
            c.send("i")
            c.send("R")
            assert await c.until_quiet(0.5) == b""
            assert sim.commands_seen == ["i", "R"]
            assert sim.faults_injected == ["silence for 30 s"]


async def test_disconnect_fault_unplugs_and_plugs_back_in(tmp_path: Path) -> None:
    plan = FaultPlan.parse("disconnect", seed=5, disconnect_every_s=0.4, disconnect_for_s=0.3)
    link = tmp_path / "ph1"
    async with EzoSimulator("ph", link, faults=plan, continuous=False) as sim:
        await until(lambda: not os.path.lexists(link), what="the link to vanish")
        await until(lambda: os.path.lexists(link), what="the link to come back")
        async with client(sim.port) as c:
            assert await c.line() == "*RE"
        assert sim.faults_injected[0] == "disconnect for 0.3 s"


def test_fault_plans_refuse_what_they_cannot_do() -> None:
    assert FaultPlan.parse(" Garbage, silence ,").kinds == {"garbage", "silence"}
    with pytest.raises(ValueError, match="unknown fault fire"):
        FaultPlan.parse("garbage,fire")
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(frozenset({"garbage"}), rate=1.5)
    with pytest.raises(ValueError, match="disconnect_for_s"):
        FaultPlan(frozenset({"disconnect"}), disconnect_for_s=0)


# ---- the command line ---------------------------------------------------------------------------

def _sim_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sim.cli", "sim", "ezo", *args]


async def test_cli_serves_the_link_and_stops_on_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "rtd1"
    proc = await asyncio.create_subprocess_exec(
        *_sim_command("--probe", "rtd", "--link", str(link), "--no-continuous", "--seed", "3"),
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 20.0)).decode()
        assert str(link) in banner and "rtd" in banner
        async with client(str(link)) as c:
            assert await c.line() == "*RE"
            reading, ok = await c.ask("R")
            assert re.fullmatch(r"-?\d+\.\d{3}", reading) and ok == "*OK"
        proc.send_signal(signal.SIGUSR1)
        await until(lambda: not os.path.lexists(link), what="SIGUSR1 to unplug")
        proc.send_signal(signal.SIGUSR2)
        await until(lambda: os.path.lexists(link), what="SIGUSR2 to plug back in")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10.0) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(("option", "value"), [("--fault-rate", "2"), ("--faults", "garbage,fire"),
                                               ("--speed", "0"), ("--probe", "orp"),
                                               ("--link", "/nonexistent/labedge/ph1")])
def test_cli_bad_option_exits_2_naming_it(tmp_path: Path, option: str, value: str) -> None:
    options = {"--probe": "ph", "--link": str(tmp_path / "ph1"), option: value}
    argv = [part for pair in options.items() for part in pair]
    done = subprocess.run(_sim_command(*argv), cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert option in done.stderr, done.stderr
