"""The reply log and pump volume on disk: kept across restarts, bounded, written off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from edge.durable import DurableState
from edge.replies import RESTARTED, Replier, ReplyLog
from lecis.commands import ReplyStatus
from tests.edge.gpio_fixtures import ManualClock


def opened(path: Path, clock: ManualClock, **kwargs: int) -> DurableState:
    store = DurableState(path, clock, **kwargs)
    store.open()
    return store


def test_replies_survive_a_restart_and_unfinished_commands_are_answered_failed(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "durable.sqlite3"
    store = opened(path, clock)
    log = ReplyLog(store=store)
    sent: list[tuple[str, dict[str, object]]] = []
    done = Replier(lambda t, p: sent.append((t, p)), log, clock, "lab/u/pump1/reply", "dose-1")
    done(ReplyStatus.ACCEPTED)
    done(ReplyStatus.DONE, result={"ml": 2.0})
    running = Replier(lambda t, p: sent.append((t, p)), log, clock, "lab/u/pump1/reply", "dose-2")
    running(ReplyStatus.ACCEPTED)
    running(ReplyStatus.RUNNING)
    store.close()

    again = opened(path, clock)
    try:
        restored = ReplyLog(store=again)
        answers = restored.restore(clock)
        assert [(topic, p["id"], p["status"], p["error"]["message"]) for topic, p in answers] == [
            ("lab/u/pump1/reply", "dose-2", "failed", RESTARTED)]
        assert restored.get("dose-1")["status"] == "done"  # type: ignore[index]
        assert restored.get("dose-2")["status"] == "failed"  # type: ignore[index]
    finally:
        again.close()
    third = opened(path, clock)
    try:
        assert ReplyLog(store=third).restore(clock) == [], "answered once: a second restart is quiet"
    finally:
        third.close()


def test_the_log_keeps_the_newest_ids_up_to_its_age(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "durable.sqlite3"
    store = opened(path, clock, reply_capacity=3)
    for n in range(5):
        store.put_reply(f"c{n}", "t", {"id": f"c{n}", "status": "done"})
    store.close()
    again = opened(path, clock, reply_capacity=3)
    assert [cid for cid, _, _ in again.replies()] == ["c2", "c3", "c4"]
    again.close()
    later = ManualClock(start=clock.now() + timedelta(hours=25))
    aged = opened(path, later, reply_capacity=3)
    assert aged.replies() == []
    aged.close()


def test_volume_stamps_survive_and_a_clock_set_back_counts_them_as_new(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "durable.sqlite3"
    store = opened(path, clock)
    store.add_volume("pump1", 4.0)
    store.close()
    half_hour_on = opened(path, ManualClock(start=clock.now() + timedelta(minutes=30)))
    assert half_hour_on.volume("pump1") == [(1800.0, 4.0)]
    half_hour_on.close()
    set_back = opened(path, ManualClock(start=clock.now() - timedelta(days=1)))
    assert set_back.volume("pump1") == [(0.0, 4.0)], "a stamp in the future counts as made now"
    set_back.close()


def test_a_pump_on_when_the_process_died_counts_up_to_its_max_on_budget(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "durable.sqlite3"
    store = opened(path, clock)
    store.segment_started("pump1", 0.5, 20.0)  # and then the process was killed
    assert store.flush()
    store._queue.put(None)  # the writer stops without the turn-off ever being written
    assert store._thread is not None
    store._thread.join(5)
    store._thread = None
    soon = opened(path, ManualClock(start=clock.now() + timedelta(seconds=8)))
    assert soon.volume("pump1") == [(0.0, pytest.approx(4.0))]  # 8 s at 0.5 ml/s
    soon.close()
    again = opened(path, ManualClock(start=clock.now() + timedelta(seconds=9)))
    assert again.volume("pump1") == [(pytest.approx(1.0), pytest.approx(4.0))], "counted once, kept"
    again.close()


def test_writes_never_wait_for_the_disk(tmp_path: Path) -> None:
    class SlowDisk(DurableState):
        def _commit(self, db: sqlite3.Connection, writes: list) -> None:  # type: ignore[type-arg]
            time.sleep(0.2)  # an SD card stalling on fsync
            super()._commit(db, writes)

    clock = ManualClock()
    store = SlowDisk(tmp_path / "durable.sqlite3", clock)
    store.open()
    try:
        log = ReplyLog(store=store)
        started = time.perf_counter()
        for n in range(200):
            log.remember(f"c{n}", {"id": f"c{n}", "status": "done"}, "t")
            store.add_volume("pump1", 0.1)
        assert time.perf_counter() - started < 0.1, "queued, not committed, on the caller's thread"
        assert store.flush(5)
    finally:
        store.close()
    again = opened(tmp_path / "durable.sqlite3", clock)
    assert len(again.replies()) == 200
    again.close()


async def test_a_failed_write_is_reported_once_on_the_loop_and_the_writer_goes_on(tmp_path: Path) -> None:
    clock = ManualClock()
    store = opened(tmp_path / "durable.sqlite3", clock)
    errors: list[tuple[str, bool]] = []
    reported = asyncio.Event()
    loop_thread = threading.get_ident()

    def on_error(message: str) -> None:
        errors.append((message, threading.get_ident() == loop_thread))
        reported.set()

    store.on_error = on_error
    for _ in range(2):
        store._queue.put(lambda db: db.execute("INSERT INTO nowhere VALUES (1)"))
        assert store.flush()
    await asyncio.wait_for(reported.wait(), 5)
    store.put_reply("after", "t", {"id": "after", "status": "done"})
    store.close()
    assert store.write_errors == 2
    assert len(errors) == 1 and "no such table" in errors[0][0] and errors[0][1], "once, on the loop"
    again = opened(tmp_path / "durable.sqlite3", clock)
    assert [cid for cid, _, _ in again.replies()] == ["after"]
    again.close()
