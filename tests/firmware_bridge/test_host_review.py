"""Host logic over resets and faults: an answer from the previous boot, a board reflashed to another
protocol, a board in a boot loop, the firmware's time never past the unit's limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge.drivers.bridge import BoardChannel
from firmware_bridge.board import Board
from firmware_bridge.fakeboard import FakeBoard
from firmware_bridge.transport import Transport
from lecis.clock import SystemClock


class ResetAfterAnswer(FakeBoard):
    """Answers the first `SET D2 1` and reboots right behind it: the OK and the HELLO arrive together."""

    armed = True

    def _request(self, body: str) -> None:
        super()._request(body)
        if self.armed and " SET D2 1 " in body:
            self.armed = False
            self.reset()


class Recording(FakeBoard):
    """Keeps every request body it heard (max_ms of each SET)."""

    heard: list[str]

    def _request(self, body: str) -> None:
        self.heard.append(body)
        super()._request(body)


@pytest.fixture
async def recording(tmp_path: Path) -> AsyncIterator[Recording]:
    board = Recording(link=tmp_path / "ttyREC")
    board.heard = []
    board.plug()
    try:
        yield board
    finally:
        await board.close()


async def wait_for(predicate: object, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_an_answer_from_before_a_reset_does_not_count_as_the_output_set(tmp_path: Path) -> None:
    fake = ResetAfterAnswer(link=tmp_path / "ttyRST")
    fake.plug()
    try:
        # a 60 s watchdog: the next refresh is 20 s away, so only the restore can switch D2 on again
        async with Board(Transport(fake.port, hello_wait_s=0.3), SystemClock(), watchdog_s=60) as board:
            await board.transport.wait_connected(5)
            await board.confirm(board.want("D2", 1, None), 2)
            await wait_for(lambda: not fake.armed, 2)
            await wait_for(lambda: fake.levels["D2"] == 1, 1.0)
            assert board.transport.counters.resets == 1
    finally:
        await fake.close()


async def test_a_board_reflashed_to_another_protocol_is_dropped_not_driven(recording: Recording) -> None:
    events: list[tuple[str, str, str]] = []
    async with Board(Transport(recording.port, hello_wait_s=0.3), SystemClock()) as board:
        board.listeners.append(lambda *e: events.append(e))
        await board.transport.wait_connected(5)
        await board.confirm(board.want("D4", 1, None), 2)
        recording.protocol = 2
        heard = len(recording.heard)
        recording.reset()
        await wait_for(lambda: not board.transport.connected, 1.0)
        await asyncio.sleep(1.5)  # the board repeats its HELLO; the host must keep away
        assert recording.heard[heard:] == [], "not one request to a board of another protocol"
        assert recording.levels["D4"] == 0
        assert "speaks protocol 2" in board.transport.problem
        assert any(code == "board_lost" and "protocol 2" in msg for _, code, msg in events), events


async def test_a_board_in_a_boot_loop_is_not_flooded(recording: Recording) -> None:
    events: list[tuple[str, str, str]] = []
    async with Board(Transport(recording.port, hello_wait_s=0.3), SystemClock()) as board:
        board.listeners.append(lambda *e: events.append(e))
        await board.transport.wait_connected(5)
        await board.confirm(board.want("D2", 1, None), 2)
        heard, boots = len(recording.heard), 40
        for _ in range(boots):  # a reboot every 25 ms for a second
            recording.reset()
            await asyncio.sleep(0.025)
        await asyncio.sleep(0.3)
        sent = len(recording.heard) - heard
        assert sent <= 2 * boots + 4, f"{sent} requests for {boots} boots"
        resets = [e for e in events if e[1] == "board_reset"]
        assert len(resets) <= 5, f"{len(resets)} reset events for one boot loop: {resets[-1]}"
        await wait_for(lambda: recording.levels["D2"] == 1, 1.0)  # once it settles, D2 is back on


async def test_the_firmware_s_time_never_outlasts_the_limit_left(recording: Recording) -> None:
    async with Board(Transport(recording.port, hello_wait_s=0.3), SystemClock(), watchdog_s=30) as board:
        await board.transport.wait_connected(5)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await board.confirm(board.want("D8", 1, 0.6), 2)
        await asyncio.sleep(0.7)
        sets = [b for b in recording.heard if " SET D8 1 " in b]
        assert sets
        assert all(int(b.split()[-1]) <= 600 for b in sets), sets
        assert recording.levels["D8"] == 0, "the board ended it at the limit"
        assert loop.time() - start < 1.0


class LeftOfLimit:
    def budget(self) -> float:
        return 1.5


async def test_a_bridged_output_s_firmware_time_is_what_is_left_of_max_on_s(recording: Recording) -> None:
    async with Board(Transport(recording.port, hello_wait_s=0.3), SystemClock(), watchdog_s=30) as board:
        await board.transport.wait_connected(5)
        channel = BoardChannel(board, SimpleNamespace(channel="D2", watchdog_s=30.0))  # type: ignore[arg-type]
        channel.output = LeftOfLimit()  # type: ignore[assignment]
        channel.on()
        await board.confirm(board.outputs["D2"], 2)
        sets = [b for b in recording.heard if " SET D2 1 " in b]
        assert sets and all(int(b.split()[-1]) <= 1500 for b in sets), sets
        channel.off()
        await board.confirm(board.outputs["D2"], 2)


async def test_unplugged_mid_frame_then_back_the_half_frame_is_forgotten(recording: Recording) -> None:
    links: list[bool] = []
    t = Transport(recording.port, hello_wait_s=0.3, initial_backoff_s=0.05,
                  on_link=lambda up, why: links.append(up))
    async with t:
        await t.wait_connected(5)
        recording._write(b"$9 OK 12")  # half an answer, then the cable goes
        recording.unplug()
        await wait_for(lambda: not t.connected, 2)
        assert "went away" in t.problem or "closed" in t.problem or "cannot open" in t.problem, t.problem
        recording.plug()
        await t.wait_connected(5)
        recording.analog["A1"] = 321
        ok = await t.request("READ", "A1")
        assert ok.values == ("A1", "321")
        assert links == [True, False, True]
        assert t.counters.stale_answers == 0


async def test_a_second_process_on_the_same_port_is_refused_by_name(recording: Recording) -> None:
    async with Transport(recording.port, hello_wait_s=0.3) as first:
        await first.wait_connected(5)
        async with Transport(recording.port, hello_wait_s=0.3) as second:  # as a second unit would
            with pytest.raises(Exception, match="in use by another program"):
                await second.wait_connected(1.0)
            assert second.counters.connects == 0
        assert (await first.request("PING")).values


class DeafToD4(Recording):
    """Misses the first copies of `SET D4 1` (noise on the line): the host retransmits them."""

    deaf = 0

    def _request(self, body: str) -> None:
        if " SET D4 1 " in body and self.deaf > 0:
            self.deaf -= 1
            return
        super()._request(body)


async def test_an_estop_reaches_the_board_right_after_a_retransmitted_request(tmp_path: Path) -> None:
    fake = DeafToD4(link=tmp_path / "ttyDEAF")
    fake.heard = []
    fake.plug()
    try:
        async with Board(Transport(fake.port, hello_wait_s=0.3), SystemClock()) as board:
            await board.transport.wait_connected(5)
            await board.confirm(board.want("D2", 1, None), 2)
            fake.deaf = 4
            d4 = board.want("D4", 1, None)
            await wait_for(lambda: fake.deaf < 4, 1)  # the D4 request is out and being retransmitted
            off = board.want("D2", 0, None)  # ESTOP
            await board.confirm(off, 2)
            await board.confirm(d4, 2)
            assert fake.levels["D2"] == 0
            after = fake.heard[fake.heard.index(next(b for b in fake.heard if " SET D4 1 " in b)):]
            first_off = next(i for i, b in enumerate(after) if " SET D2 0 " in b)
            assert all(" SET D4 1 " in b for b in after[:first_off]), after  # nothing else before it
            assert board.transport.counters.retransmits >= 4
    finally:
        await fake.close()
