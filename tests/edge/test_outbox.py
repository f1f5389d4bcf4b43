"""The outbox: numbered, ordered, bounded, and still there after a crash."""

from __future__ import annotations

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
        assert outbox.count() == 10
        assert outbox.take_dropped() == 5
        assert outbox.take_dropped() == 0  # reported once
        assert [m.seq for m in outbox.pending(0, 100)] == list(range(6, 16))


def test_size_limit_drops_in_chunks_of_a_hundredth(path: Path) -> None:
    with Outbox(path, max_messages=1000) as outbox:
        for i in range(1001):
            outbox.append("ph1", "data", reading(i))
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
print(seq, flush=True)
sys.stdin.read()  # hold the outbox open until killed
"""


def test_an_append_survives_kill_9_right_after_it_returns(path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "500"], cwd=root,
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
    assert line.strip() == "500"
    with Outbox(path) as outbox:
        assert outbox.count() == 500
        assert outbox.last_seq("ph1") == 500
        assert outbox.pending(0, 1000)[-1].seq == 500
        assert outbox.append("ph1", "data", reading(7.0)) == 501
