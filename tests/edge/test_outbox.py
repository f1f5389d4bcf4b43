"""The outbox: numbered, ordered, bounded, still there after a crash, and never waiting on the disk."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxError
from lecis.payloads import check_data, check_event

TS = "2026-11-21T15:04:05.123Z"


def reading(value: float) -> dict[str, object]:
    return {"readings": [{"ts": TS, "values": {"ph": value}}]}


def event(code: str = "probe_dry") -> dict[str, object]:
    return {"ts": TS, "level": "warning", "code": code, "message": "probe reads dry"}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


def test_seq_counts_per_module_and_survives_reopen(path: Path) -> None:
    with Outbox(path) as outbox:
        assert [outbox.append("ph1", "data", reading(7.0)) for _ in range(3)] == [1, 2, 3]
        assert outbox.append("do1", "data", reading(1.0)) == 1
        assert outbox.append("ph1", "event", event()) == 4  # events share the module's count
        outbox.ack(m.id for m in outbox.pending(0, 100))  # even with nothing left to send
    with Outbox(path) as outbox:
        assert outbox.count() == 0
        assert (outbox.last_seq("ph1"), outbox.last_seq("do1"), outbox.last_seq("temp1")) == (4, 1, 0)
        assert outbox.append("ph1", "data", reading(7.1)) == 5
        assert outbox.append("do1", "data", reading(1.1)) == 2


def test_pending_returns_messages_in_append_order(path: Path) -> None:
    with Outbox(path) as outbox:
        for i in range(10):
            outbox.append(("ph1", "do1")[i % 2], "data", reading(i))
        first = outbox.pending(0, 4)
        rest = outbox.pending(first[-1].id, 100)
        messages = first + rest
        assert len(first) == 4 and len(messages) == 10
        assert [json.loads(m.body)["readings"][0]["values"]["ph"] for m in messages] == list(range(10))
        assert [m.id for m in messages] == sorted(m.id for m in messages)
        assert [(m.module, m.seq) for m in messages[:4]] == [("ph1", 1), ("do1", 1), ("ph1", 2), ("do1", 2)]


def test_ack_removes_only_the_delivered_messages(path: Path) -> None:
    with Outbox(path) as outbox:
        for i in range(6):
            outbox.append("ph1", "data", reading(i))
        ids = [m.id for m in outbox.pending(0, 100)]
        outbox.ack([ids[4], ids[0], ids[1], 10_000])  # out of order, and one that never existed
        assert outbox.flush()
        assert outbox.count() == 3
        assert [m.seq for m in outbox.pending(0, 100)] == [3, 4, 6]
    with Outbox(path) as outbox:
        assert outbox.count() == 3


def test_ids_keep_growing_after_everything_is_acked(path: Path) -> None:
    with Outbox(path) as outbox:
        outbox.append("ph1", "data", reading(7.0))
        before = outbox.max_id()
        outbox.ack([before])
        outbox.append("ph1", "data", reading(7.0))
        # A forwarder that already sent `before` must still see the new message as pending.
        assert [m.seq for m in outbox.pending(before, 10)] == [2]


def test_size_limit_drops_the_oldest_and_counts_them(path: Path) -> None:
    with Outbox(path, max_messages=10) as outbox:
        for i in range(15):
            outbox.append("ph1", "data", reading(i))
        assert outbox.flush()
        assert outbox.count() == 10
        assert outbox.take_dropped() == 5
        assert outbox.take_dropped() == 0  # reported once
        assert [m.seq for m in outbox.pending(0, 100)] == list(range(6, 16))


def test_size_limit_drops_in_chunks_of_a_hundredth(path: Path) -> None:
    with Outbox(path, max_messages=1000) as outbox:
        for i in range(1001):
            outbox.append("ph1", "data", reading(i))
        assert outbox.flush()
        assert outbox.take_dropped() == 10
        assert outbox.count() == 991
        assert outbox.pending(0, 1)[0].seq == 11


def test_payload_renders_the_contract_json(path: Path) -> None:
    with Outbox(path) as outbox:
        outbox.append("ph1", "data", {"readings": [{"ts": TS, "values": {"ph": 7.02, "temp": 21.5}}]})
        outbox.append("ph1", "event", event())
        data, alarm = outbox.pending(0, 10)
        live = json.loads(data.payload(hist=False))
        assert live == {"seq": 1, "hist": False,
                        "readings": [{"ts": TS, "values": {"ph": 7.02, "temp": 21.5}}]}
        assert check_data(live) == []
        assert json.loads(data.payload(hist=True))["hist"] is True
        stored = json.loads(alarm.payload(hist=True))
        assert check_event(stored) == []
        assert (stored["seq"], stored["hist"], stored["code"]) == (2, True, "probe_dry")


def test_append_refuses_what_the_outbox_must_assign(path: Path) -> None:
    with Outbox(path) as outbox:
        with pytest.raises(ValueError, match="seq"):
            outbox.append("ph1", "data", {"seq": 3, **reading(7.0)})
        with pytest.raises(ValueError, match="kind"):
            outbox.append("ph1", "reply", reading(7.0))  # type: ignore[arg-type]
        assert outbox.count() == 0


def test_a_corrupt_file_is_reported_and_left_alone(path: Path) -> None:
    garbage = b"this is not a database, it is a shopping list\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(OutboxError, match=str(path)) as caught:
        Outbox(path).open()
    assert "move the file aside" in str(caught.value)
    assert path.read_bytes() == garbage


def test_a_truncated_outbox_is_reported(path: Path) -> None:
    with Outbox(path) as outbox:
        for i in range(3000):
            outbox.append("ph1", "data", reading(i))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(OutboxError, match="damaged"):
        Outbox(path).open()


def test_another_sqlite_file_is_not_taken_for_an_outbox(path: Path) -> None:
    import sqlite3

    other = sqlite3.connect(path)
    other.execute("CREATE TABLE samples (x)")
    other.commit()
    other.close()
    with pytest.raises(OutboxError, match="not a labedge outbox"):
        Outbox(path).open()


def test_a_second_owner_is_refused(path: Path) -> None:
    with Outbox(path) as outbox:
        outbox.append("ph1", "data", reading(7.0))
        with pytest.raises(OutboxError, match="in use by another process"):
            Outbox(path).open()
        assert outbox.append("ph1", "data", reading(7.0)) == 2


def test_using_a_closed_outbox_says_so(path: Path) -> None:
    outbox = Outbox(path)
    with pytest.raises(OutboxError, match="not open"):
        outbox.append("ph1", "data", reading(7.0))


async def test_async_with_opens_and_closes(path: Path) -> None:
    async with Outbox(path) as outbox:
        outbox.append("ph1", "data", reading(7.0))
        assert outbox.disk_bytes() > 0
    with Outbox(path) as outbox:
        assert outbox.count() == 1


CHILD = """
import sys
from pathlib import Path
from edge.outbox import Outbox
outbox = Outbox(Path(sys.argv[1])).open()
for i in range(int(sys.argv[2])):
    body = {"readings": [{"ts": "2026-11-21T15:04:05.123Z", "values": {"ph": i}}]}
    seq = outbox.append("ph1", "data", body)
    if i == int(sys.argv[2]) // 2 and sys.argv[3] != "flush":
        outbox.flush()  # half of them surely on disk, the rest queued when the kill comes
if sys.argv[3] == "flush":
    outbox.flush()
print(seq, flush=True)
sys.stdin.read()  # hold the outbox open until killed
"""


def kill_9_after(path: Path, appends: int, flush: bool) -> str:
    """A child process appends, optionally flushes, says its last seq and is killed with SIGKILL."""
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(appends),
                              "flush" if flush else "no"], cwd=root,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        child.kill()  # SIGKILL: no close(), no checkpoint
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return line.strip()


def test_a_flushed_append_survives_kill_9_right_after(path: Path) -> None:
    assert kill_9_after(path, 500, flush=True) == "500"
    with Outbox(path) as outbox:
        assert outbox.count() == 500
        assert outbox.last_seq("ph1") == 500
        assert outbox.pending(0, 1000)[-1].seq == 500
        assert outbox.append("ph1", "data", reading(7.0)) == 501


def test_kill_9_with_appends_still_queued_leaves_no_gap_in_seq(path: Path) -> None:
    # What the child queued but had not committed is lost with it; the seqs it had handed
    # out for those were never sent (only committed messages are), so numbering goes on
    # from the last stored one, with no gap and no seq given to two readings.
    assert kill_9_after(path, 20_000, flush=False) == "20000"
    with Outbox(path) as outbox:
        stored = outbox.count()
        assert 10_000 <= stored <= 20_000
        seqs = [m.seq for m in outbox.pending(0, 30_000)]
        assert seqs == list(range(1, stored + 1))
        assert outbox.append("ph1", "data", reading(7.0)) == stored + 1


def test_append_returns_before_the_disk_and_counts_the_queue(path: Path) -> None:
    with Outbox(path) as outbox:
        seqs = [outbox.append("ph1", "data", reading(i)) for i in range(100)]
        assert seqs == list(range(1, 101))
        assert outbox.count() == 100  # queued ones count: the unit's status says what it holds
        assert outbox.flush()
        assert outbox.committed_id() == outbox.max_id() == 100


async def test_fetch_serves_only_committed_messages_recent_ones_from_memory(path: Path) -> None:
    woken: list[int] = []
    async with Outbox(path) as outbox:
        outbox.watch(lambda: woken.append(outbox.committed_id()))
        for i in range(10):
            outbox.append("ph1", "data", reading(i))
        assert await outbox.flushed()
        await asyncio.sleep(0)  # the commit's wake-up runs on this loop
        assert woken and woken[-1] == 10
        first = await outbox.fetch(0, 4)
        assert [m.seq for m in first] == [1, 2, 3, 4]
        assert [m.seq for m in await outbox.fetch(first[-1].id, 100)] == list(range(5, 11))
        assert await outbox.fetch(10, 100) == []
    async with Outbox(path) as outbox:  # after a restart the backlog comes from the file
        assert [m.seq for m in await outbox.fetch(0, 100)] == list(range(1, 11))


async def test_a_full_disk_is_reported_and_append_keeps_going(path: Path) -> None:
    problems: list[tuple[str, str]] = []
    async with Outbox(path, on_problem=lambda code, message: problems.append((code, message)),
                      memory_limit=50) as outbox:
        outbox.append("ph1", "data", reading(0))
        assert await outbox.flushed()
        writer_db = outbox._writer.db  # type: ignore[union-attr]  # the writer is idle: flushed
        pages = writer_db.execute("PRAGMA page_count").fetchone()[0]
        writer_db.execute(f"PRAGMA max_page_count={pages}")  # SQLite now answers "database or disk is full"
        big = {"readings": [{"ts": TS, "values": {"ph": 7.0}, "note": "x" * 3000}]}
        for _ in range(80):
            outbox.append("ph1", "data", big)  # never raises
        assert not await outbox.flushed()
        await asyncio.sleep(0)
        codes = [code for code, _ in problems]
        assert codes.count("disk_full") == 1  # once per episode, not once per retry
        assert "outbox_full" in codes  # the memory buffer of 50 overflowed: counted
        assert "free space" in dict(problems)["disk_full"]
        assert outbox.take_dropped() == 30
        writer_db.execute("PRAGMA max_page_count=1073741823")
        assert await outbox.flushed()  # the writer's retry commits what waited in memory
        outbox.append("ph1", "data", reading(1))
        assert await outbox.flushed()
        seqs = [m.seq for m in outbox.pending(0, 200)]
        # Held in memory: 50 of the 80; which 30 went depends on when the writer first failed.
        assert len(seqs) == 52 and seqs[0] == 1 and seqs[-1] == 82 and seqs == sorted(seqs)
        assert outbox.count() == 52
