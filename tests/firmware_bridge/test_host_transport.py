"""Transport logic the firmware does not exercise: doubled answers, a hung board, capped backoff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_bridge import frames
from firmware_bridge.fakeboard import FakeBoard
from firmware_bridge.frames import Request
from firmware_bridge.transport import BoardNotConnected, Transport


class DoublingBoard(FakeBoard):
    """Answers every request twice, as a line that duplicates whole frames would."""

    def _request(self, req: Request) -> None:
        super()._request(req)
        if self._last is not None:
            self._write(self._last[1])


class RecordingClock:
    """Real time, but every sleep is recorded and shortened, so backoff shows without waiting."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0.001)


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeBoard]:
    board = await FakeBoard.open(tmp_path / "ttyFAKE")
    try:
        yield board
    finally:
        await board.close()


async def test_doubled_answers_are_dropped_and_never_taken_for_the_next_request(tmp_path: Path) -> None:
    board = await DoublingBoard.open(tmp_path / "ttyDOUBLE")
    try:
        async with Transport(board.port) as t:
            await t.wait_connected(5)
            for raw in (5, 900, 17):
                board.analog["A2"] = raw
                ok = await t.request("READ", "A2")
                assert ok.values == ("A2", str(raw))
            assert t.counters.stale_answers >= 3
            assert t.counters.retransmits == 0
    finally:
        await board.close()


async def test_a_hung_board_is_lost_after_the_tries_then_found_again(fake: FakeBoard) -> None:
    events: list[tuple[bool, str]] = []
    t = Transport(fake.port, hello_wait_s=0.3, on_link=lambda up, why: events.append((up, why)))
    async with t:
        await t.wait_connected(5)
        fake.answer = False
        executed = fake.executed
        with pytest.raises(BoardNotConnected, match=r"did not answer SET after \d+ tries"):
            await t.request("SET", "D2", "1", "1000")
        assert fake.executed == executed + 1, "ten tries or more of one request, executed once"
        assert t.counters.timeouts == 1 and t.counters.retransmits >= 9
        with pytest.raises(BoardNotConnected):
            await t.request("PING")  # refused at once while the link is down
        fake.answer = True
        await t.wait_connected(10)
        assert [up for up, _ in events] == [True, False, True]
        assert "did not answer SET" in events[1][1]


async def test_reconnect_backoff_doubles_to_its_cap(tmp_path: Path) -> None:
    clock = RecordingClock()
    t = Transport(str(tmp_path / "ttyNONE"), clock=clock, initial_backoff_s=0.25, max_backoff_s=4.0)
    async with t:
        async with asyncio.timeout(5):
            while len(clock.sleeps) < 7:
                await asyncio.sleep(0.002)
        with pytest.raises(BoardNotConnected, match=r"cannot open the port.*is the board plugged in"):
            await t.wait_connected(0.01)
    assert clock.sleeps[:7] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_a_host_restarted_at_a_number_the_board_remembers_still_executes(fake: FakeBoard) -> None:
    async with Transport(fake.port) as first:
        await first.wait_connected(5)
        await first.request("SET", "D7", "1", "60000")  # seq 2: the board remembers 2
    assert fake.levels["D7"] == 1
    async with Transport(fake.port, hello_wait_s=0.3) as second:  # a new process starts at 1 again
        await second.wait_connected(5)
        await second.request("SET", "D7", "0", "60000")  # seq 2 again, a different request
    assert fake.levels["D7"] == 0, "executed, not answered from memory"


def test_parser_counts_reach_the_transport_counters() -> None:
    t = Transport("/dev/null")
    for frame in t.parser.feed(b"$1 OK*0000\n" + frames.encode_body("0 EXPIRED D2")):
        t._dispatch(frame)
    assert t.parser.counters.bad_crc == 1 and t.parser.counters.frames == 1


async def test_a_board_of_another_protocol_version_is_not_used(tmp_path: Path) -> None:
    board = FakeBoard(link=tmp_path / "ttyV2", protocol=2)
    board.plug()
    try:
        async with Transport(board.port, hello_wait_s=1.5) as t:
            with pytest.raises(BoardNotConnected, match=r"speaks protocol 2 .*this unit speaks 1"):
                await t.wait_connected(3.0)  # the HELLO repeated after 1 s (pyserial flushes at open)
            assert board.executed == 0, "not one request sent"
    finally:
        await board.close()


async def test_an_output_at_the_end_of_its_limit_is_not_sent_again(fake: FakeBoard) -> None:
    from firmware_bridge.board import Board
    from lecis.clock import SystemClock

    async with Board(Transport(fake.port, hello_wait_s=0.3), SystemClock(), watchdog_s=0.06) as board:
        await board.transport.wait_connected(5)
        await board.confirm(board.want("D2", 1, 0.1), 2)
        assert fake.levels["D2"] == 1
        await asyncio.sleep(0.2)  # past its limit; nobody turned it off on the host
        assert fake.levels["D2"] == 0, "the board's watchdog ended it"
        sent = board.counters.sent
        await asyncio.sleep(0.2)
        assert board.counters.sent == sent, "not sent again once its limit ended"
        assert board._next_wake(board.clock.monotonic()) is None, "no busy loop on an ended output"
