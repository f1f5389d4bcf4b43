"""The generic line driver against a small turbidimeter-like instrument on a pseudo-terminal,
and the line transport (edge.serial_line) both drivers stand on."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import tty
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from edge.driver import DriverResources
from edge.drivers.line import LineDriver
from edge.serial_line import SerialLine, SerialTimeout
from lecis.clock import SystemClock
from lecis.dcd import CommandSpec, Dcd, ParamSpec, ReadingSpec
from lecis.errors import CommandFailed, DeviceError, DeviceLost
from tests.edge.fake_host import FakeHost, running

PATTERN = r"^T=(?P<turbidity>[0-9.]+) NTU$"
COMMANDS = (
    CommandSpec("set_range", (ParamSpec("level", "integer", minimum=1, maximum=3),),
                wire="RANGE {level}", expect=r"^OK$"),
    CommandSpec("identify", wire="ID?"),
)


class LineInstrument:
    """An instrument on an os.openpty() pair: `answer(line)` gives the reply text (or None), and
    `stream()` writes lines by itself. `port` is the pty path a driver opens."""

    def __init__(self, answer: Callable[[str], str | None] | None = None) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # raw, no echo: bytes pass as on a serial line
        self.port = os.ttyname(self._slave)
        self.answer = answer or (lambda line: None)
        self.seen: list[str] = []
        self._buffer = b""
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        self._buffer += os.read(self.master, 1024)
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.decode().rstrip("\r")
            self.seen.append(line)
            reply = self.answer(line)
            if reply is not None:
                self.write(reply + "\r\n")

    def write(self, text: str) -> None:
        os.write(self.master, text.encode("latin-1"))

    async def stream(self, lines: list[str], every: float) -> None:
        for text in lines:
            await asyncio.sleep(every)
            self.write(text)

    def unplug(self) -> None:
        if self.master < 0:
            return
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self._slave)
        self.master = -1


@contextlib.asynccontextmanager
async def instrument(answer: Callable[[str], str | None] | None = None) -> AsyncIterator[LineInstrument]:
    device = LineInstrument(answer)
    try:
        yield device
    finally:
        device.unplug()


def replies(*texts: str | None, then: str | None = "T=12.3 NTU") -> Callable[[str], str | None]:
    """Answer `READ?` with `texts` in turn, then always with `then`; other lines get `OK`."""
    queue = list(texts)

    def answer(line: str) -> str | None:
        if line != "READ?":
            return "OK"
        return queue.pop(0) if queue else then

    return answer


def dcd(port: str, **settings: Any) -> Dcd:
    base: dict[str, Any] = {"port": port, "baudrate": 9600, "period_s": 0.1, "timeout_s": 0.5,
                            "query": "READ?", "pattern": PATTERN}
    base.update(settings)
    return Dcd(module="turb1", driver="line", source="turb1.yaml", kind="instrument",
               readings=(ReadingSpec("turbidity", "NTU", 0.0, 4000.0),), commands=COMMANDS, settings=base)




async def test_turbidimeter_is_queried_every_period() -> None:
    async with instrument(replies()) as device:
        host = FakeHost()
        async with running(LineDriver(dcd(device.port, period_s=0.15), host, DriverResources())):
            got = await host.wait_readings(3)
        assert [r.values for r in got] == [{"turbidity": 12.3}] * 3
        gaps = [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(got)]
        assert all(0.12 < gap < 0.5 for gap in gaps), gaps
        assert set(device.seen) == {"READ?"}
        assert host.events == []


async def test_bad_lines_give_events_and_no_reading() -> None:
    # The first answer goes to initialize(), which only checks that the instrument answers.
    bad = ("T=12.3 FNU", "\x00\x7f\xfe", "T=9999 NTU", "T=1.2.3 NTU")
    async with instrument(replies("T=0.1 NTU", *bad)) as device:
        host = FakeHost()
        async with running(LineDriver(dcd(device.port), host, DriverResources())) as task:
            (good,) = await host.wait_readings(1)
            assert not task.done()
        assert good.values == {"turbidity": 12.3}
        # One event per episode: the first bad line, then (at the good reading) how many followed it.
        assert host.codes() == ["bad_data", "out_of_range", "bad_data"]
        assert "'T=12.3 FNU'" in host.events[0][2]
        assert "9999" in host.events[1][2] and "NTU" in host.events[1][2]
        assert "2 more bad_data" in host.events[2][2] and "'T=1.2.3 NTU'" in host.events[2][2]


async def test_an_extra_line_is_reported_and_never_taken_for_the_next_answer() -> None:
    async with instrument(replies("T=0.1 NTU", "T=1.0 NTU\r\nT=9.9 NTU", then="T=2.0 NTU")) as device:
        host = FakeHost()
        async with running(LineDriver(dcd(device.port), host, DriverResources())):
            got = await host.wait_readings(3)
        assert [r.values["turbidity"] for r in got] == [1.0, 2.0, 2.0]
        assert host.codes() == ["bad_data"]
        assert "'T=9.9 NTU' unasked" in host.events[0][2]


async def test_silent_instrument_ends_run_with_no_response() -> None:
    async with instrument(replies(then="T=12.3 NTU")) as device:
        host = FakeHost()
        driver = LineDriver(dcd(device.port, timeout_s=0.2), host, DriverResources())
        await driver.initialize()
        device.answer = lambda line: None
        with pytest.raises(DeviceError) as caught:
            await asyncio.wait_for(driver.run(), 5)
        await driver.close()
    assert caught.value.code == "no_response"
    assert host.codes() == ["timeout", "timeout"]


async def test_streaming_instrument_every_line_is_a_reading() -> None:
    async with instrument() as device:
        host = FakeHost()
        driver = LineDriver(dcd(device.port, query=None, period_s=0.1), host, DriverResources())
        async with running(driver):
            feeder = asyncio.create_task(device.stream(
                ["T=1.0 NTU\r\n", "T=2.", "5 NTU\r\n", "\x13\x88garbage\r\n", "T=3.0 NTU\r\n"], 0.03))
            got = await host.wait_readings(3)
            await feeder
        assert [r.values["turbidity"] for r in got] == [1.0, 2.5, 3.0]
        assert host.codes() == ["bad_data"]
        assert device.seen == []  # nothing is asked of a streaming instrument


async def test_streaming_instrument_that_stops_is_reported() -> None:
    async with instrument() as device:
        host = FakeHost()
        driver = LineDriver(dcd(device.port, query=None, period_s=0.1, timeout_s=0.1), host,
                            DriverResources())
        async with running(driver) as task:
            device.write("T=1.0 NTU\r\n")
            await host.wait_readings(1)
            with pytest.raises(DeviceError, match="no line 3 times"):
                await asyncio.wait_for(task, 5)
        assert host.codes() == ["timeout", "timeout"]


async def test_command_is_sent_and_its_answer_checked() -> None:
    answers = {"RANGE 2": "OK", "RANGE 3": "ERR range", "ID?": "TURB-9000 v1.2"}
    async with instrument(lambda line: answers.get(line, "T=12.3 NTU")) as device:
        host = FakeHost()
        driver = LineDriver(dcd(device.port), host, DriverResources())
        spec = driver.dcd.command("set_range")
        assert spec is not None
        async with running(driver):
            await host.wait_readings(1)
            done = await driver.execute("set_range", spec.validate({"level": 2}), run=None)  # type: ignore[arg-type]
            named = await driver.execute("identify", {}, run=None)  # type: ignore[arg-type]
            with pytest.raises(CommandFailed, match="'ERR range'"):
                await driver.execute("set_range", {"level": 3}, run=None)  # type: ignore[arg-type]
            await host.wait_readings(1)
        assert done == {"answer": ["OK"]}
        assert named == {"answer": ["TURB-9000 v1.2"]}
        assert "RANGE 2" in device.seen
        assert host.events == []


async def test_unanswered_command_is_command_failed() -> None:
    async with instrument(replies()) as device:
        driver = LineDriver(dcd(device.port), FakeHost(), DriverResources())
        await driver.initialize()
        device.answer = lambda line: None
        try:
            with pytest.raises(CommandFailed, match="'ID\\?'"):
                await driver.execute("identify", {}, run=None)  # type: ignore[arg-type]
        finally:
            await driver.close()


async def test_command_to_a_streaming_instrument_keeps_the_readings_before_its_answer() -> None:
    async with instrument() as device:
        host = FakeHost()
        driver = LineDriver(dcd(device.port, query=None, period_s=0.1), host, DriverResources())
        device.answer = lambda line: None
        await driver.initialize()
        try:
            device.answer = lambda line: "T=4.0 NTU\r\nT=5.0 NTU\r\nTURB-9000" if line == "ID?" else None
            result = await driver.execute("identify", {}, run=None)  # type: ignore[arg-type]
        finally:
            await driver.close()
        assert result == {"answer": ["TURB-9000"]}
        assert host.values("turbidity") == [4.0, 5.0]


async def test_unplug_ends_run_with_device_lost_and_replug_reads_again() -> None:
    host = FakeHost()
    async with instrument(replies()) as device:
        driver = LineDriver(dcd(device.port), host, DriverResources())
        await driver.initialize()
        task = asyncio.create_task(driver.run())
        await host.wait_readings(1)
        device.unplug()
        with pytest.raises(DeviceLost, match=device.port):
            await asyncio.wait_for(task, 5)
        await driver.close()
    async with instrument(replies(then="T=7.5 NTU")) as device:
        driver.port = device.port  # a new pty has a new name; the unit builds its driver again anyway
        async with running(driver):
            (again,) = await host.wait_readings(1)
    assert again.values == {"turbidity": 7.5}


async def test_missing_port_is_device_lost_naming_it() -> None:
    driver = LineDriver(dcd("/dev/does-not-exist-turb"), FakeHost(), DriverResources())
    with pytest.raises(DeviceLost, match="/dev/does-not-exist-turb"):
        await driver.initialize()


async def test_instrument_that_does_not_answer_at_init() -> None:
    async with instrument() as device:
        driver = LineDriver(dcd(device.port, timeout_s=0.2), FakeHost(), DriverResources())
        with pytest.raises(DeviceError) as caught:
            await driver.initialize()
    assert caught.value.code == "no_response"
    assert "'READ?'" in caught.value.message


async def test_bad_pattern_is_reported_at_init() -> None:
    driver = LineDriver(dcd("/dev/null", pattern="T=([0-9.]+"), FakeHost(), DriverResources())
    with pytest.raises(DeviceError) as caught:
        await driver.initialize()
    assert caught.value.code == "bad_dcd"
    assert caught.value.message.startswith("turb1.yaml: settings.pattern:")


def test_instruments_have_no_outputs() -> None:
    driver = LineDriver(dcd("/dev/null"), FakeHost(), DriverResources())
    driver.safe()
    assert driver.outputs() == {}


# ---- the line transport under both drivers ------------------------------------------------------


class Writer:
    """Stands in for a StreamWriter: records what is written."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("Connection lost")

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


def serial_line(data: bytes, terminator: str = "\r") -> tuple[SerialLine, asyncio.StreamReader, Writer]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    writer = Writer()
    line = SerialLine(reader, writer, port="/dev/ttyT0", clock=SystemClock(),  # type: ignore[arg-type]
                      terminator=terminator, max_line=64)
    return line, reader, writer


async def test_lines_split_on_the_terminator_with_stray_line_feeds_dropped() -> None:
    line, _, _ = serial_line(b"7.012\r\n*OK\r\n\r\n?i,pH,2.16\r")
    assert [await line.read_line(0.1) for _ in range(3)] == ["7.012", "*OK", "?i,pH,2.16"]


async def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    line, _, _ = serial_line(b"7.\xff12\r")
    assert await line.read_line(0.1) == "7.\ufffd12"


async def test_noise_without_terminator_is_handed_out_in_bounded_pieces() -> None:
    line, _, _ = serial_line(b"\x01" * 100)
    assert await line.read_line(0.1) == "\x01" * 64


async def test_partial_line_at_timeout_is_reported_and_dropped() -> None:
    line, reader, _ = serial_line(b"7.0")
    with pytest.raises(SerialTimeout) as caught:
        await line.read_line(0.05)
    assert caught.value.partial == "7.0"
    assert "'7.0'" in caught.value.message
    reader.feed_data(b"7.1\r")
    assert await line.read_line(0.1) == "7.1"


async def test_end_of_file_and_transport_errors_are_device_lost() -> None:
    line, reader, writer = serial_line(b"")
    reader.feed_eof()
    with pytest.raises(DeviceLost, match="/dev/ttyT0"):
        await line.read_line(0.1)
    line, reader, writer = serial_line(b"")
    reader.set_exception(OSError(5, "Input/output error"))
    with pytest.raises(DeviceLost, match="Input/output error"):
        await line.read_line(0.1)
    writer.closed = True
    with pytest.raises(DeviceLost, match="/dev/ttyT0"):
        await line.send("R\r")


async def test_send_writes_text_as_given() -> None:
    line, _, writer = serial_line(b"")
    await line.send("Cal,mid,7.00\r")
    assert writer.written == b"Cal,mid,7.00\r"
    await line.close()
    with pytest.raises(DeviceLost, match="closed"):
        await line.send("R\r")
