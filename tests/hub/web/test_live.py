"""The live stream: one frame per flush per client, filtered by the unit it selected; a client that
stops reading is dropped once its bounded queue is full, and nothing more is kept for it."""

from __future__ import annotations

import json

from hub.web.live import LiveBridge


def test_points_reach_only_the_clients_that_selected_their_unit() -> None:
    bridge = LiveBridge(max_frames=10)
    every, one = bridge.connect("every"), bridge.connect("one")
    one.select = "bench-2"
    bridge.publish({"type": "points", "unit": "bench-1", "points": [[1.0, {"ph": 7.0}]]})
    bridge.publish({"type": "unit", "unit": {"unit": "bench-1"}})
    bridge.flush()
    first = json.loads(every.frames.get_nowait() or "")
    assert [m["type"] for m in first] == ["points", "unit"]
    assert [m["type"] for m in json.loads(one.frames.get_nowait() or "")] == ["unit"]


def test_a_client_that_stops_reading_is_dropped_with_bounded_memory() -> None:
    bridge = LiveBridge(max_frames=5)
    stuck, reading = bridge.connect("stuck"), bridge.connect("reading")
    for n in range(50):
        bridge.publish({"type": "points", "unit": "u", "points": [[float(n), {"x": 1.0}]]})
        bridge.flush()
        while not reading.frames.empty():
            reading.frames.get_nowait()
    assert stuck.dropped and stuck.gone.is_set() and stuck not in bridge.clients and reading in bridge.clients
    assert stuck.frames.qsize() <= 5
    frames = [stuck.frames.get_nowait() for _ in range(stuck.frames.qsize())]
    assert frames[-1] is None  # the end marker: its sender closes the socket (1013)
    assert bridge.stats["dropped_clients"] == 1


def test_nothing_is_gathered_without_clients() -> None:
    bridge = LiveBridge()
    for _ in range(1000):
        bridge.publish({"type": "points", "unit": "u", "points": []})
    assert bridge.stats["messages"] == 0


def test_big_frames_are_bounded_in_bytes_too() -> None:
    bridge = LiveBridge(max_frames=1000, max_bytes=10_000)
    stuck = bridge.connect("stuck")
    for _ in range(5):
        bridge.publish({"type": "event", "event": {"message": "x" * 3000}})
        bridge.flush()
    assert stuck.dropped and stuck.queued_bytes <= 10_000
