"""The host side (transport, board) driving the real firmware in simavr, seen on the emulated pins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from firmware_bridge.board import Board
from firmware_bridge.proxy import FaultProxy, Faults
from firmware_bridge.transport import BoardRefused, Transport
from lecis.clock import SystemClock
from tests.firmware_bridge.simrig import SimRig, simrig_fixture  # noqa: F401

Events = list[tuple[str, str, str]]


async def until(check: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"{what} not within {timeout:g} s") from None


@pytest.fixture
async def board(simrig: SimRig) -> AsyncIterator[tuple[Board, Events]]:
    events: Events = []
    b = Board(Transport(simrig.pty), SystemClock())
    b.listeners.append(lambda *e: events.append(e))
    async with b:
        await b.transport.wait_connected(5)
        yield b, events


async def test_hello_then_outputs_and_analog_end_to_end(simrig: SimRig, board: tuple[Board, Events]) -> None:
    b, events = board
    hello = b.transport.hello
    assert hello is not None and hello.protocol == 1 and len(hello.boot_id) == 8
    assert events[0][1] == "board_connected" and hello.boot_id in events[0][2]
    await b.confirm(b.want("D2", 1, 10), 2)
    assert simrig.pin("D2").level == 1
    await b.confirm(b.want("D2", 0, None), 2)
    assert simrig.pin("D2").level == 0
    await b.confirm(b.want("D3", 200, 10), 2)
    assert simrig.pwm("D3") == 200
    await b.confirm(b.want("S1", -800, 10), 2)
    await asyncio.to_thread(simrig.wait_sim_us, 20_000)
    steps = simrig.steps("S1")
    assert steps.direction == 0 and steps.interval_us == pytest.approx(1250, rel=0.02)
    simrig.adc("A3", 1250)
    assert await b.read("A3") == pytest.approx(1250 / 5000 * 1023, abs=2)


async def test_unknown_command_and_channel_are_refused_and_nothing_moves(
        simrig: SimRig, board: tuple[Board, Events]) -> None:
    b, _ = board
    with pytest.raises(BoardRefused) as refused:
        await b.confirm(b.want("D9", 1, 10), 2)
    assert refused.value.kind == "bad_channel"
    with pytest.raises(BoardRefused) as unknown:
        await b.transport.request("FLY", "D2")
    assert unknown.value.kind == "unknown_command"
    assert not any(simrig.pins().values())


async def test_output_refreshed_while_wanted_then_default_when_the_host_stops(
        simrig: SimRig, board: tuple[Board, Events]) -> None:
    b, _ = board
    b.want("D4", 1, None, watchdog_s=0.3)
    await until(lambda: simrig.pin("D4").level == 1, what="D4 on")
    await asyncio.to_thread(simrig.wait_sim_us, 1_000_000)  # three watchdog times: the refreshes keep it on
    assert simrig.pin("D4").level == 1 and b.counters.refreshes >= 3
    # The host dies: no more refreshes, no last frame.
    assert b._task is not None
    b._task.cancel()
    stopped_us = simrig.time_us()
    await asyncio.to_thread(simrig.wait_sim_us, 400_000)
    pin = simrig.pin("D4")
    assert pin.level == 0
    assert pin.changed_at_us - stopped_us <= 300_000 * 1.1, "default within max_duration + 10 %"


async def test_reset_mid_run_is_seen_and_the_wanted_outputs_come_back(
        simrig: SimRig, board: tuple[Board, Events]) -> None:
    b, events = board
    await b.confirm(b.want("D2", 1, 30), 2)
    await b.confirm(b.want("D3", 90, 30), 2)
    await b.confirm(b.want("D7", 1, 0.2), 2)  # its limit ends before the reset: not sent again
    await b.confirm(b.want("D8", 0, None), 2)
    await asyncio.sleep(0.3)
    first = b.transport.hello
    simrig.reset()
    loop = asyncio.get_running_loop()
    reset_at = loop.time()
    await until(lambda: b.transport.counters.resets == 1, 1.0, "the new boot id within 1 s")
    assert loop.time() - reset_at < 1.0
    assert b.transport.hello is not None and first is not None
    assert b.transport.hello.boot_id != first.boot_id
    await until(lambda: simrig.pin("D2").level == 1 and simrig.pwm("D3") == 90, 2, "outputs restored")
    assert simrig.pin("D7").level == 0 and simrig.pin("D8").level == 0
    codes = [e[1] for e in events]
    assert "board_reset" in codes
    restore = next(e for e in events if e[1] == "bridge_restore")
    assert "D2, D3" in restore[2] and "D7" not in restore[2]


async def test_one_percent_faults_every_command_executed_exactly_once(simrig: SimRig, tmp_path: Path) -> None:
    proxy = FaultProxy(simrig.pty, Faults(drop=0.005, corrupt=0.005), seed=9, link=tmp_path / "ttyFAULTY")
    async with proxy:
        t = Transport(proxy.port)
        async with t:
            await t.wait_connected(10)
            before = int((await t.request("PING")).values[0])
            for i in range(1000):
                await t.request("SET", "D8", str(i % 2), "60000")
            after = int((await t.request("PING")).values[0])
            assert after - before == 1001, "1,000 SETs and the PING itself, each executed once"
            assert t.counters.retransmits > 100, "the faults did bite"
            assert t.counters.timeouts == 0 and t.counters.disconnects == 0
            assert t.parser.counters.bad_crc + t.parser.counters.bad_frame > 0
        assert proxy.to_board.dropped + proxy.to_board.corrupted > 0
        assert proxy.to_host.dropped + proxy.to_host.corrupted > 0
    assert simrig.pin("D8").level == 1  # the last SET (i = 999) was 1
