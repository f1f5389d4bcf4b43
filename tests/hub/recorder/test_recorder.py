"""The recorder as the hub uses it: seq checks, counters anyone can read, run and session files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hub.controller.effects import CommandEffect, DerivedEffect, LogEffect, Outcome, SessionEffect
from hub.recorder import Recorder, RecorderBusy, RecorderClosed, RecorderEvent, RunIdInvalid
from tests.hub.recorder.helpers import T0, SetClock, birth, data, event

TS = "2026-12-01T13:00:00.000Z"


def csv_rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]


def one_chunk(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


async def test_a_repeated_seq_is_ignored_and_a_gap_is_counted_and_reported(tmp_path: Path) -> None:
    seen: list[RecorderEvent] = []
    async with Recorder(tmp_path, SetClock(), on_event=seen.append) as rec:
        for seq in (1, 2, 3, 3, 2, 7, 8):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0 + seq / 100}), 0.0)
        rec.ingest("bench-1", "ph1", "event", event(9), 0.0)
        rec.ingest("bench-1", "ph1", "event", event(9), 0.0)
        await rec.flush()
        counts = rec.stats()["units"]["bench-1"]["ph1"]
        assert rec.seqs("bench-1", "ph1") == [1, 2, 3, 7, 8, 9]
        lost = rec.events(code="readings_lost")
    assert counts["received"] == 9 and counts["stored"] == 6 and counts["duplicates"] == 3
    assert counts["gaps"] == 1 and counts["readings_lost"] == 3
    assert [(e["unit"], e["module"], e["level"]) for e in lost] == [("bench-1", "ph1", "warning")]
    assert "seq 4 to 6" in lost[0]["message"] and lost[0]["data"]["lost"] == 3
    assert [(e.code, e.data["first_seq"], e.data["last_seq"]) for e in seen] == [("readings_lost", 4, 6)]


async def test_a_late_seq_inside_a_gap_fills_it_and_the_loss_shrinks(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        for seq in (1, 4, 2, 2):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
        await rec.flush()
        counts = rec.stats()["units"]["bench-1"]["ph1"]
        assert rec.seqs("bench-1", "ph1") == [1, 2, 4]
    assert counts["readings_lost"] == 1 and counts["recovered"] == 1 and counts["duplicates"] == 1


async def test_counters_and_last_seq_survive_a_restart(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        for seq in (1, 2, 5):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.ingest("bench-1", "ph1", "data", data(5, {"ph": 7.0}), 0.0)  # redelivered after the restart
        rec.ingest("bench-1", "ph1", "data", data(6, {"ph": 7.0}), 0.0)
        await rec.flush()
        counts = rec.stats()["units"]["bench-1"]["ph1"]
    assert counts["duplicates"] == 1 and counts["readings_lost"] == 2 and counts["stored"] == 4


async def test_a_hist_backlog_is_stored_in_order_beside_live_data(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        rec.ingest("bench-1", "ph1", "data", data(1, {"ph": 7.0}), 0.0)
        for seq in range(2, 50):  # measured while the broker was away, sent on reconnect
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}, hist=True), 0.0)
        rec.ingest("bench-1", "ph1", "data", data(50, {"ph": 7.5}), 0.0)
        await rec.flush()
        assert rec.seqs("bench-1", "ph1") == list(range(1, 51))
        assert rec.stats()["totals"]["readings_lost"] == 0
        assert rec.latest("bench-1", "ph1") == {"ts": T0.timestamp() + 50, "seq": 50, "values": {"ph": 7.5}}
    rows = csv_rows(one_chunk(tmp_path / "runs/run-1/units/bench-1", "ph1.*.csv"))
    assert [int(r[2]) for r in rows[1:]] == list(range(1, 51))


async def test_hostile_payloads_are_counted_and_logged_and_recording_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    nested: dict[str, object] = {}
    for _ in range(100_000):
        nested = {"x": nested}
    hostile: list[tuple[str, object]] = [
        ("data", {"seq": "1", "hist": False, "readings": []}),                     # wrong type
        ("data", {"seq": 10**400, "hist": False, "readings": [{"ts": "x", "values": {"ph": 1}}]}),  # huge
        ("data", {"seq": 2, "hist": False, "readings": [{"ts": T0.isoformat(), "values": {"ph": 10**400}}]}),
        ("data", {"seq": 3, "hist": False, "readings": [{"ts": "2026-12-01T13:00:00.000Z",
                                                         "values": {"p\ud800h": 7.0}}]}),  # lone surrogate
        ("data", {"seq": 4, "hist": False, "readings": [{"ts": "2026-12-01T13:00:00.000Z",
                                                         "values": {"ph": nested}}]}),  # deep nesting
        ("data", {"seq": 5, "readings": [{"ts": TS, "values": {"ph": 1.0}}]}),  # missing field
        ("data", {"seq": 6, "hist": False, "readings": [{"ts": "2026-02-30T13:00:00.000Z",  # no such day
                                                         "values": {"ph": 1}}]}),
        ("data", {"seq": 7, "hist": True, "readings": [{"ts": TS, "values": {"ph": True}}]}),
        ("data", [1, 2, 3]),
        ("data", nested),
        ("event", {"seq": 8, "ts": "2026-12-01T13:00:00.000Z", "level": "panic", "code": "x", "message": ""}),
        ("state", {"lecis": "IDLE"}),
        ("birth", {"unit": "bench-2", "version": "1", "boot": "b", "ts": "2026-12-01T13:00:00.000Z",
                   "modules": {}}),
        ("telemetry", {}),
    ]
    async with Recorder(tmp_path, SetClock()) as rec:
        for kind, payload in hostile:
            rec.ingest("bench-1", "ph1", kind, payload, 0.0)
        rec.ingest("bench-1", "ph1", "event", event(20, message="text with a lone \udc80 surrogate"), 0.0)
        rec.ingest("Bench 1", "ph1", "data", data(1, {"ph": 7.0}), 0.0)  # not a unit id
        rec.ingest("bench-1", "ph1", "data", data(21, {"ph": 7.0}), 0.0)
        await rec.flush()
        stats = rec.stats()
        stored_event = rec.events(unit="bench-1", code="bad_data")
        assert rec.seqs("bench-1", "ph1") == [20, 21]
    counts = stats["units"]["bench-1"]["ph1"]
    assert counts["bad"] == len(hostile) - 1  # the birth names another unit: refused at unit level
    assert stats["unattributed_bad"] == 1 + 1
    assert stored_event[0]["message"] == "text with a lone \\udc80 surrogate"
    assert "seq: must be an integer, got a string" in caplog.text
    assert "readings[0].values" in caplog.text


async def test_a_second_recorder_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()):
        with pytest.raises(RecorderBusy, match=r"in use by another recorder, pid \d+"):
            async with Recorder(tmp_path, SetClock()):
                pass
    async with Recorder(tmp_path, SetClock()):  # free again once the first has closed
        pass


async def test_a_run_writes_csv_schema_events_commands_versions_and_metadata(tmp_path: Path) -> None:
    clock = SetClock()
    async with Recorder(tmp_path, clock) as rec:
        rec.open_run("run-42", {"experiment": "respirometry"}, {"bench-1": birth()})
        rec.ingest("bench-1", "rtd1", "data", data(1, {"temp": 25.125}), 0.0)
        rec.ingest("bench-1", "do1", "data", data(2, {"do_mg": 8.5, "do_sat": 95.0}), 0.0)
        rec.ingest("bench-1", "do1", "data", data(4, {"do_mg": 8.25}), 0.0)
        rec.ingest("bench-2", "ph1", "data", data(1, {"ph": 7.0}), 0.0)  # not a unit of the run
        sink = rec.sink("run-42")
        sink.script_version(1, "tasks: []\n", "ana", T0.timestamp(), "")
        dose = CommandEffect("e1", "bench-1", "base_pump", "dose", {"ml": 2.5}, "loop:ph")
        sink.effect(dose, T0.timestamp() + 3, None)
        sink.effect(dose, T0.timestamp() + 5, Outcome("done", result={"ml": 2.5, "ran_s": 2.5}))
        sink.effect(LogEffect("info", "log", "aeration off", "task:cycle"), T0.timestamp() + 6, None)
        sink.effect(SessionEffect("start", "bench-1", "s1", "task:begin"), T0.timestamp() + 6, None)
        sink.effect(DerivedEffect("our", T0.timestamp() + 7, 0.42), T0.timestamp() + 7, None)
        clock.advance(60)
        rec.close_run("run-42")
        await rec.flush()
        our = rec.history("hub", "signals", "our", T0.timestamp(), T0.timestamp() + 60, 6)
    run = tmp_path / "runs/run-42"
    temp = csv_rows(one_chunk(run / "units/bench-1", "rtd1.2026-12-01T13.csv"))
    assert temp == [["ts_utc", "elapsed_s", "seq", "temp [°C]"],
                    ["2026-12-01T13:00:01.000Z", "1.000", "1", "25.125"]]
    do = csv_rows(one_chunk(run / "units/bench-1", "do1.*.csv"))
    assert do[0] == ["ts_utc", "elapsed_s", "seq", "do_mg [mg/L]", "do_sat [%]"]
    assert do[1:] == [["2026-12-01T13:00:02.000Z", "2.000", "2", "8.5", "95.0"],
                      ["2026-12-01T13:00:04.000Z", "4.000", "4", "8.25", ""]]
    assert not (run / "units/bench-2").exists()
    schema = json.loads((run / "schema.json").read_text())
    assert schema["modules"]["bench-1/ph1"]["readings"] == [
        {"name": "ph", "unit": "pH", "range": [0.001, 14.0]}]
    assert schema["modules"]["bench-1/rtd1"]["columns"][-1] == "temp [°C]"
    commands = [json.loads(x) for x in one_chunk(run, "commands.*.jsonl").read_text().splitlines()]
    assert [(c["cmd"], c["args"], c["outcome"] and c["outcome"]["status"]) for c in commands] == [
        ("dose", {"ml": 2.5}, None), ("dose", {"ml": 2.5}, "done")]
    events = [json.loads(x) for x in one_chunk(run, "events.*.jsonl").read_text().splitlines()]
    assert [(e["source"], e["code"]) for e in events] == [
        ("recorder", "readings_lost"), ("controller", "script_version"), ("controller", "log"),
        ("controller", "session_start")]
    assert (run / "versions/0001.yaml").read_text() == "tasks: []\n"
    assert json.loads((run / "versions/0001.json").read_text())["author"] == "ana"
    derived = csv_rows(one_chunk(run / "derived", "our.*.csv"))
    assert derived == [["ts_utc", "elapsed_s", "value"], ["2026-12-01T13:00:07.000Z", "7.000", "0.42"]]
    meta = json.loads((run / "run.json").read_text())
    assert meta["id"] == "run-42" and meta["experiment"] == "respirometry" and meta["units"] == ["bench-1"]
    assert meta["started_at"] == "2026-12-01T13:00:00.000Z" and meta["ended_at"] == "2026-12-01T13:01:00.000Z"
    assert meta["readings_lost"] == {"bench-1/do1": 1, "bench-1/rtd1": 0}
    assert meta["software_version"] and meta["versions"][0]["version"] == 1
    assert [(b.count, b.max) for b in our] == [(1, 0.42)]


async def test_a_session_records_its_unit_with_the_schema_of_its_last_birth(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.ingest("bench-1", "", "birth", birth().to_json(), 0.0)
        rec.open_session("s-2026-12-01-1", "bench-1", {"user": "ana"})
        rec.ingest("bench-1", "ph1", "data", data(1, {"ph": 6.9}), 0.0)
        rec.ingest("bench-2", "ph1", "data", data(1, {"ph": 6.9}), 0.0)
        rec.close_session("s-2026-12-01-1")
        await rec.flush()
        with pytest.raises(RunIdInvalid, match="already ended"):
            rec.open_session("s-2026-12-01-1", "bench-1", {})
        with pytest.raises(RunIdInvalid, match="cannot name a folder"):
            rec.open_session("../etc", "bench-1", {})
        assert rec.state("bench-1", "$birth") is not None
    folder = tmp_path / "sessions/s-2026-12-01-1"
    assert csv_rows(one_chunk(folder / "units/bench-1", "ph1.*.csv"))[1][3] == "6.9"
    assert not (folder / "units/bench-2").exists()
    meta = json.loads((folder / "run.json").read_text())
    assert meta["kind"] == "session" and meta["units"] == ["bench-1"] and meta["meta"] == {"user": "ana"}
    assert "bench-1/ph1" in json.loads((folder / "schema.json").read_text())["modules"]


async def test_a_data_folder_with_odd_characters_works(tmp_path: Path) -> None:
    folder = tmp_path / "lab data #1?"
    async with Recorder(folder, SetClock()) as rec:
        rec.ingest("bench-1", "ph1", "data", data(1, {"ph": 7.0}), 0.0)
        await rec.flush()
        assert rec.seqs("bench-1", "ph1") == [1]


async def test_states_keep_the_last_one_per_module(tmp_path: Path) -> None:
    state = {"lecis": "IDLE", "control": "REMOTE", "outputs": {"on": False}, "error": None,
             "ts": "2026-12-01T13:00:00.000Z"}
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.ingest("bench-1", "base_pump", "state", state, 1.0)
        rec.ingest("bench-1", "base_pump", "state", {**state, "outputs": {"on": True}}, 2.0)
        await rec.flush()
        last = rec.state("bench-1", "base_pump")
    assert last == {"payload": {**state, "outputs": {"on": True}}, "received_at": 2.0}


async def test_events_are_filtered_by_module_code_level_and_time(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.ingest("bench-1", "ph1", "event", event(1, "bad_data"), 0.0)
        rec.ingest("bench-1", "ph1", "event", event(2, "timeout", "alarm"), 0.0)
        rec.ingest("bench-1", "do1", "event", event(3, "bad_data"), 0.0)
        await rec.flush()
        assert [e["seq"] for e in rec.events(module="ph1")] == [1, 2]
        assert [e["seq"] for e in rec.events(level="alarm")] == [2]
        assert [e["seq"] for e in rec.events(code="bad_data", start=T0.timestamp() + 2)] == [3]
        assert [e["seq"] for e in rec.events(limit=1)] == [1]


async def test_a_command_is_in_commands_jsonl_before_sink_effect_returns(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        sink = rec.sink("run-1")
        sink.effect(CommandEffect("e7", "bench-1", "aeration", "on", {}, "task:tick"), T0.timestamp(), None)
        # No flush: a hub killed right after sending must still find the command it sent.
        lines = one_chunk(tmp_path / "runs/run-1", "commands.*.jsonl").read_text().splitlines()
        assert [json.loads(x)["effect_id"] for x in lines] == ["e7"]


async def test_a_writer_that_dies_raises_an_alarm_and_ingest_says_so(tmp_path: Path) -> None:
    alarms: list[str] = []
    rec = Recorder(tmp_path, SetClock(), on_alarm=lambda code, message: alarms.append(code))
    async with rec:
        writer = rec._writer
        assert writer is not None

        def broken(*args: object) -> None:
            raise RuntimeError("a bug")

        writer._transaction = broken  # type: ignore[assignment,method-assign]
        rec.ingest("bench-1", "ph1", "data", data(1, {"ph": 7.0}), 0.0)
        while not alarms:
            await asyncio.sleep(0.01)
        with pytest.raises(RecorderClosed, match="stopped: RuntimeError"):
            rec.ingest("bench-1", "ph1", "data", data(2, {"ph": 7.0}), 0.0)
    assert alarms == ["recorder_stopped"]
