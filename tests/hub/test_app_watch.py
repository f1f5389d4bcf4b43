"""`labedge watch` shows the hub and its experiment as lines a person reads (not as a unit called hub)."""

from __future__ import annotations

from labedge.watch import format_message
from lecis.topics import Topics


def test_hub_lines() -> None:
    topics = Topics()
    assert format_message(topics, "lab/hub/$state", {"online": True, "ts": "x"}) == "hub          online"
    state = {"state": "running", "script_version": 2, "readings_lost": 0,
             "loops": {"ph": {"kind": "onoff", "on": False}, "temp": {"kind": "pid", "output": 0.4}},
             "next_due": [{"task": "finish", "due": "2026-12-01T18:00:00.000Z"}]}
    assert format_message(topics, "lab/hub/experiment/state", state) == (
        "experiment           running v2 ph=False temp=0.4 next finish at 2026-12-01T18:00:00.000Z lost=0")
    event = {"level": "info", "code": "log", "message": "cycle 1: OUR 20.1 mg/L/h"}
    assert format_message(topics, "lab/hub/experiment/event", event) == (
        "experiment           INFO log: cycle 1: OUR 20.1 mg/L/h")
    assert format_message(topics, "lab/hub/$reply", {"id": "x"}) is None
