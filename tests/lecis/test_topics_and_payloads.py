from __future__ import annotations

from datetime import UTC, datetime

from lecis.clock import iso_ts, parse_ts
from lecis.payloads import check_data, check_event, check_module_state, check_reply, check_unit_state
from lecis.topics import MODULE_ID, UNIT_ID, Topics


def test_topics_follow_the_contract() -> None:
    topics = Topics()
    assert topics.unit_state("bench-1") == "lab/bench-1/$state"
    assert topics.data("bench-1", "ph1") == "lab/bench-1/ph1/data"
    assert topics.hub_session("bench-1") == "lab/hub/sessions/bench-1"
    assert Topics("plant/a").cmd("u", "m") == "plant/a/u/m/cmd"


def test_split_tells_unit_module_and_leaf() -> None:
    topics = Topics()
    assert topics.split("lab/bench-1/$cmd") == ("bench-1", "$cmd", "")
    assert topics.split("lab/bench-1/ph1/data") == ("bench-1", "ph1", "data")
    assert topics.split("other/bench-1/ph1/data") is None
    assert topics.split("lab/bench-1/ph1/data/extra") is None


def test_names() -> None:
    assert UNIT_ID.match("bench-1") and not UNIT_ID.match("Bench_1") and not UNIT_ID.match("-a")
    assert MODULE_ID.match("base_pump") and not MODULE_ID.match("base-pump")


def test_timestamps_are_utc_milliseconds_z() -> None:
    moment = datetime(2026, 11, 21, 15, 4, 5, 123456, tzinfo=UTC)
    assert iso_ts(moment) == "2026-11-21T15:04:05.123Z"
    assert parse_ts("2026-11-21T15:04:05.123Z") == moment.replace(microsecond=123000)


def test_payload_checks_catch_what_outside_clients_would_trip_on() -> None:
    ts = "2026-11-21T15:04:05.123Z"
    assert check_unit_state({"state": "ready", "boot": "b", "ts": ts}) == []
    assert check_unit_state({"state": "up", "boot": "b", "ts": ts})
    assert check_data({"seq": 1, "hist": False, "readings": [{"ts": ts, "values": {"ph": 7.0}}]}) == []
    assert check_data({"seq": "1", "hist": False, "readings": []})
    assert check_event({"seq": 3, "ts": ts, "level": "alarm", "code": "x", "message": "m"}) == []
    assert check_event({"seq": 3, "ts": "yesterday", "level": "panic", "code": "x", "message": "m"})
    assert check_module_state({"lecis": "IDLE", "control": "REMOTE", "outputs": {}, "error": None,
                               "ts": ts}) == []
    assert check_reply({"id": "a", "status": "rejected", "error": {"kind": "denied", "param": None,
                                                                    "message": "m"}, "result": {},
                        "ts": ts}) == []
    assert check_reply({"id": "a", "status": "rejected", "error": None, "result": {}, "ts": ts})
