"""The firmware's per-output max_duration watchdog, measured in the emulator's simulated time:
an output the host stops refreshing returns to its default within max_ms + 10 %."""

from __future__ import annotations

import time

from firmware_bridge.frames import Expired, Hello, Ok
from tests.firmware_bridge.simrig import BoardPort, SimRig, board_port_fixture, simrig_fixture  # noqa: F401


def test_a_digital_output_not_refreshed_returns_low_within_max_ms(
    simrig: SimRig, board_port: BoardPort
) -> None:
    for seq, (name, max_ms) in enumerate((("D2", 300), ("D8", 1000), ("D7", 50)), start=1):
        assert board_port.request(f"{seq} SET {name} 1 {max_ms}") == Ok(seq)
        on = simrig.pin(name)
        assert on.level == 1
        board_port.expect(Expired, timeout=max_ms / 1000 + 2.0, channel=name)
        off = simrig.pin(name)
        assert off.level == 0
        held_us = off.changed_at_us - on.changed_at_us
        # Not early (simavr's Timer0 runs about 0.02 % fast, hence 0.999), and within max_ms + 10 %.
        assert max_ms * 999 <= held_us <= max_ms * 1100, (name, held_us)


def test_pwm_and_stepper_return_to_their_defaults(simrig: SimRig, board_port: BoardPort) -> None:
    assert board_port.request("1 PWM D3 90 200") == Ok(1)
    assert board_port.request("2 STEP S1 800 400") == Ok(2)
    started = simrig.time_us()
    assert simrig.pwm("D3") == 90
    board_port.expect(Expired, timeout=3.0, channel="D3")
    assert simrig.pwm("D3") == 0
    board_port.expect(Expired, timeout=3.0, channel="S1")
    stopped = simrig.steps("S1")
    assert simrig.time_us() - started <= 400_000 * 1.1 + 100_000  # seen within a poll of the rig
    # No step after the expiry: at 800 Hz one would come every 1.25 ms.
    simrig.wait_sim_us(50_000)
    assert simrig.steps("S1").count == stopped.count
    assert 0.9 * 0.4 * 800 <= stopped.count <= 1.1 * 0.4 * 800


def test_refreshing_keeps_an_output_on(simrig: SimRig, board_port: BoardPort) -> None:
    assert board_port.request("1 SET D4 1 1000") == Ok(1)
    first = simrig.pin("D4")
    for seq in range(2, 12):  # refreshed every ~200 ms, well inside the 1000 ms
        time.sleep(0.2)
        assert board_port.request(f"{seq} SET D4 1 1000") == Ok(seq)
    assert simrig.time_us() - first.changed_at_us > 1_500_000
    assert simrig.pin("D4") == first  # never dropped in between
    assert not board_port.collect(0)  # and no EXPIRED


def test_a_default_value_needs_no_refresh(simrig: SimRig, board_port: BoardPort) -> None:
    assert board_port.request("1 SET D2 1 100") == Ok(1)
    assert board_port.request("2 SET D2 0 100") == Ok(2)
    assert not [f for f in board_port.collect(0.5) if isinstance(f, Expired)]
    assert simrig.pin("D2").level == 0


def test_a_hung_firmware_is_reset_by_the_avr_watchdog(simrig: SimRig, board_port: BoardPort) -> None:
    assert board_port.request("1 SET D2 1 60000") == Ok(1)
    hung_at = simrig.hang()  # a loop with interrupts off: no tick, no UART
    hello = board_port.expect(Hello, timeout=3.0)
    assert isinstance(hello, Hello) and board_port.hello is not None
    assert hello.boot_id != board_port.hello.boot_id
    low = simrig.pin("D2")
    assert low.level == 0
    assert 0.9 * 250_000 <= low.changed_at_us - hung_at <= 1.2 * 250_000  # WDTO_250MS
    assert board_port.request("2 PING") == Ok(2, ("1",))
