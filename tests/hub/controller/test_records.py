"""The engine's records turn into the same JSON-able dicts as dataclasses.asdict gives, copies included."""

from __future__ import annotations

from dataclasses import asdict

from hub.controller.loops import OnOffState, PidState
from hub.controller.tasks import TaskRun, TaskState


def test_records_match_asdict_and_share_nothing_mutable() -> None:
    state = TaskState(fired=3, dues=[10.0, 20.5], done=False, truth=True, hold_until=7.25, inside=True,
                      exit_pending=True, last_fired=5.0)
    run = TaskRun(4, "dose", "do", index=2, wait_until=None, version=2, ending=True,
                  command={"effect_id": "e-1", "unit": "bench-1", "module": "base_pump", "cmd": "dose",
                           "args": {"ml": 2.5, "note": "x", "on": True, "none": None}, "origin": "task:dose"})
    records = [state, run, OnOffState(True, 1.0, None, 6.9), PidState(0.5, 24.9, 100.0, 0.4, 180.0, None,
                                                                       120.0, None, 0.3)]
    for rec in records:
        assert rec.to_json() == asdict(rec)
        assert list(rec.to_json()) == list(asdict(rec))  # the same key order: the same saved text
    dumped = state.to_json()
    dumped["dues"].append(99.0)
    assert state.dues == [10.0, 20.5]
    saved = run.to_json()
    saved["command"]["args"]["ml"] = 0.0
    assert run.command is not None and run.command["args"]["ml"] == 2.5
