"""The firmware in simavr: HELLO on every boot with a new boot id, repeated until the host speaks."""

from __future__ import annotations

from firmware_bridge.frames import Hello, Ok
from tests.firmware_bridge.simrig import (  # noqa: F401
    BoardPort,
    SimRig,
    board_port_fixture,
    simrig_fixture,
    start_rig,
)


def test_hello_on_boot_then_a_new_boot_id_after_each_reset(simrig: SimRig, board_port: BoardPort) -> None:
    first = board_port.hello
    assert isinstance(first, Hello)
    assert (first.protocol, first.firmware, first.seq) == (1, "0.1.0", 0)
    ids = [first.boot_id]
    for _ in range(3):
        simrig.reset()
        hello = board_port.expect(Hello)
        assert isinstance(hello, Hello)
        ids.append(hello.boot_id)
    assert len(set(ids)) == len(ids), ids


def test_two_boards_boot_with_different_ids(simrig: SimRig, board_port: BoardPort) -> None:
    hello = board_port.hello
    with start_rig() as other:
        port = BoardPort(other.pty)
        try:
            other_hello = port.expect(Hello)
        finally:
            port.close()
    assert isinstance(hello, Hello) and isinstance(other_hello, Hello)
    assert hello.boot_id != other_hello.boot_id


def test_hello_repeats_until_a_request_then_stops(simrig: SimRig, board_port: BoardPort) -> None:
    boot = board_port.hello
    again = board_port.expect(Hello, timeout=3.0)  # the board repeats it every second
    assert again == boot
    assert board_port.request("1 PING") == Ok(1, ("1",))
    start = simrig.time_us()
    later = board_port.collect(1.5)
    assert simrig.time_us() - start > 1_000_000
    assert not [f for f in later if isinstance(f, Hello)], later


def test_a_reset_forgets_the_duplicate_memory_and_the_counter(simrig: SimRig, board_port: BoardPort) -> None:
    assert board_port.request("5 PING") == Ok(5, ("1",))
    simrig.reset()
    board_port.expect(Hello)
    # The same number after a reset is a new request: executed, counted from 1 again.
    assert board_port.request("5 PING") == Ok(5, ("1",))
