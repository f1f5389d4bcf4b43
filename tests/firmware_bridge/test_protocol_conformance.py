"""PROTOCOL.md checks run twice: against the real firmware in simavr and against the Python FakeBoard
(which `labedge lab` uses when simavr is missing), so both answer every hostile input the same way."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from typing import Protocol

import pytest

from firmware_bridge.fakeboard import FakeBoard
from firmware_bridge.frames import Ain, Err, Expired, Hello, Ok, crc16, encode_body
from tests.firmware_bridge.simrig import BoardPort, SimRig, require_rig, start_rig
from tests.firmware_bridge.test_firmware_frames import AT_REST, BAD_REQUESTS


class Target(Protocol):
    pty: str

    def reset(self) -> None: ...

    def levels(self) -> dict[str, int]: ...


class FirmwareTarget:
    def __init__(self, rig: SimRig) -> None:
        self.rig = rig
        self.pty = rig.pty

    def reset(self) -> None:
        self.rig.reset()

    def levels(self) -> dict[str, int]:
        pins = self.rig.pins()
        return {"D2": pins["D2"], "D4": pins["D4"], "D7": pins["D7"], "D8": pins["D8"],
                "D3": self.rig.pwm("D3")}


class FakeTarget:
    """FakeBoard on an event loop of its own thread, so the test talks to it like to the rig."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.board = asyncio.run_coroutine_threadsafe(FakeBoard.open(), self.loop).result(5)
        self.pty = self.board.port

    def _call(self, fn: object) -> None:
        async def run() -> None:
            fn()  # type: ignore[operator]

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def reset(self) -> None:
        self._call(self.board.reset)

    def levels(self) -> dict[str, int]:
        return {k: v for k, v in self.board.levels.items() if k != "S1"}

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.board.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module", params=["firmware", "fakeboard"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if request.param == "fakeboard":
        fake = FakeTarget()
        yield fake
        fake.close()
        return
    require_rig()
    with start_rig(log=tmp_path_factory.mktemp("rig") / "simrig.log") as rig:
        yield FirmwareTarget(rig)


@pytest.fixture
def port(target: Target) -> Iterator[BoardPort]:
    """A freshly booted board (counters and duplicate memory empty), its boot HELLO in `port.hello`."""
    board_port = BoardPort(target.pty)
    try:
        board_port.collect(0.05)
        target.reset()
        hello = board_port.expect(Hello, timeout=5.0)
        assert isinstance(hello, Hello)
        board_port.hello = hello
        yield board_port
    finally:
        board_port.close()


def stats(port: BoardPort, seq: int) -> dict[str, int]:
    answer = port.request(f"{seq} STATS")
    assert isinstance(answer, Ok), answer
    names = ("bad_crc", "bad_frame", "overlong", "duplicates", "rx_overflow")
    return dict(zip(names, map(int, answer.values), strict=True))


def executed(port: BoardPort, seq: int) -> int:
    answer = port.request(f"{seq} PING")
    assert isinstance(answer, Ok), answer
    return int(answer.values[0])


def raw_frame(body: bytes, crc: int | None = None, end: bytes = b"\n") -> bytes:
    return b"$" + body + b"*%04X" % (crc16(body) if crc is None else crc) + end


def test_ping_counts_err_answers_and_itself(port: BoardPort) -> None:
    assert port.request("1 PING") == Ok(1, ("1",))
    assert port.request("2 FOO") == Err(2, "unknown_command", "FOO")
    assert port.request("3 SET D9 1 100") == Err(3, "bad_channel", "D9")
    assert port.request("4 PING") == Ok(4, ("4",))
    assert port.request("4 PING") == Ok(4, ("4",))  # from memory: not counted again
    assert port.request("5 PING") == Ok(5, ("5",))


def test_refused_requests_get_the_firmware_s_exact_answers(target: Target, port: BoardPort) -> None:
    for seq, (body, kind, detail) in enumerate(BAD_REQUESTS, start=1):
        answer = port.request(f"{seq} {body}")
        if kind is None:
            assert answer == Ok(seq)
            port.request(f"{seq + 100} SET D2 0 60000")
            continue
        assert answer == Err(seq, kind, detail), body
        assert port.request(f"{seq + 200} STATUS") == Ok(seq + 200, AT_REST), body
    assert set(target.levels().values()) == {0}


# body without its seq, and the answer without its seq (None: dropped, no answer)
NUMBERS: list[tuple[str, str]] = [
    ("SET D2 01 100", "OK"),  # leading zeros are decimal digits
    ("SET D2 0 0000100", "OK"),
    ("SET D2 1 00000100", "ERR bad_value max_ms"),  # 8 digits: refused, never wrapped
    ("SET D2 1 99999999999", "ERR bad_value max_ms"),
    ("SET D2 1 4294967397", "ERR bad_value max_ms"),  # 2^32 + 101
    ("SET D2 1 600001", "ERR bad_value max_ms"),
    ("SET D2 1 +100", "ERR bad_value max_ms"),
    ("SET D2 1 -0", "ERR bad_value max_ms"),
    ("SET D2 65537 100", "ERR bad_value level"),  # 2^16 + 1
    ("SET D2 -1 100", "ERR bad_value level"),
    ("PWM D3 -0 100", "ERR bad_value duty"),
    ("PWM D3 0256 100", "ERR bad_value duty"),
    ("PWM D3 +5 100", "ERR bad_value duty"),
    ("PWM D3 4294967296 100", "ERR bad_value duty"),
    ("PWM D3 1e2 100", "ERR bad_value duty"),
    ("PWM D3 0x10 100", "ERR bad_value duty"),
    ("PWM D3 0255 100", "OK"),
    ("PWM D3 0 100", "OK"),
    ("STEP S1 -0 100", "OK"),  # minus zero is rate 0: stopped
    ("STEP S1 --5 100", "ERR bad_value rate"),
    ("STEP S1 - 100", "ERR bad_value rate"),
    ("STEP S1 65537 100", "ERR bad_value rate"),
    ("STEP S1 -65537 100", "ERR bad_value rate"),
    ("STEP S1 -4294967295 100", "ERR bad_value rate"),
    ("STEP S1 -2000 100", "OK"),
    ("STEP S1 0 100", "OK"),
    ("PERIOD A0 60001", "ERR bad_value ms"),
    ("PERIOD A0 65586", "ERR bad_value ms"),  # 50 in 16 bits
    ("PERIOD A0 -0", "ERR bad_value ms"),
    ("PERIOD A0 00000", "OK"),
    ("READ A00", "ERR bad_channel A00"),
    ("READ a0", "ERR bad_channel a0"),
    ("SET d2 1 100", "ERR bad_channel d2"),
    ("SET D02 1 100", "ERR bad_channel D02"),
    ("STATUS D22", "ERR bad_channel D22"),
    ("STATUS A0", "ERR bad_channel A0"),
]


def test_hostile_numbers_in_every_field_are_refused_by_name(target: Target, port: BoardPort) -> None:
    for seq, (body, want) in enumerate(NUMBERS, start=1):
        answer = port.request(f"{seq} {body}")
        got = "OK" if isinstance(answer, Ok) and not answer.values else (
            f"ERR {answer.kind} {answer.detail}" if isinstance(answer, Err) else repr(answer))
        assert got == want, body
        if want == "OK" and body.startswith("SET D2 01"):
            assert target.levels()["D2"] == 1
            assert port.request("100 SET D2 0 100") == Ok(100)
    assert set(target.levels().values()) == {0}
    # 65637 ms does not wrap at 16 bits: the watchdog holds more than 65.5 s
    assert port.request("101 SET D4 1 65637") == Ok(101)
    item = port.request("102 STATUS D4")
    assert isinstance(item, Ok) and item.values[0].startswith("D4=1/")
    assert int(item.values[0].split("/")[1]) > 65536
    assert port.request("103 SET D4 0 100") == Ok(103)


def test_sequence_numbers_with_leading_zeros_or_out_of_range(port: BoardPort) -> None:
    assert port.request("007 PING") == Ok(7, ("1",))
    assert port.request("0000255 PING") == Ok(255, ("2",))
    for body in ("00000001 PING", "256 PING", "-0 PING", "-1 PING", "4294967297 PING", "0 PING", "000 PING"):
        port.send(body)
    assert port.request("1 PING") == Ok(1, ("3",))
    assert stats(port, 2)["bad_frame"] == 7


def test_every_byte_value_inside_a_frame(port: BoardPort) -> None:
    answered = 0
    for b in range(256):
        seq = b % 254 + 1
        body = b"%d X" % seq + bytes([b])
        if 0x21 <= b <= 0x7E and b not in (0x24, 0x2A):
            assert encode_body(body.decode()) == raw_frame(body)
            assert port.request(f"{seq} X{chr(b)}") == Err(seq, "unknown_command", f"X{chr(b)}")
            answered += 1
        else:
            port.write(raw_frame(body))
    assert answered == 92
    assert executed(port, 255) == answered + 1
    counted = stats(port, 254)
    # 161 control/high bytes, the trailing space, `**`, and `$` (the cut frame) are bad frames;
    # after `$` the rest `*CRC` is an empty body whose CRC does not match
    assert counted == {"bad_crc": 1, "bad_frame": 164, "overlong": 0, "duplicates": 0, "rx_overflow": 0}


def test_every_byte_value_between_frames_is_ignored(target: Target, port: BoardPort) -> None:
    noise = bytes(b for b in range(256) if b != 0x24) * 4
    port.write(noise)
    assert port.request("1 PING") == Ok(1, ("1",))
    assert stats(port, 2) == {"bad_crc": 0, "bad_frame": 0, "overlong": 0, "duplicates": 0,
                              "rx_overflow": 0}
    assert set(target.levels().values()) == {0}


def test_frames_of_63_and_64_bytes_are_executed_65_is_overlong(port: BoardPort) -> None:
    for seq, size in ((1, 63), (2, 64)):
        name = "X" * (size - 7 - len(f"{seq} "))
        frame = encode_body(f"{seq} {name}")
        assert len(frame) == size
        answer = port.request(f"{seq} {name}")
        assert answer == Err(seq, "unknown_command", name[: 57 - len(f"{seq} ERR unknown_command ")])
    body = b"3 " + b"X" * 56
    port.write(raw_frame(body))  # 65 bytes
    port.write(raw_frame(b"4 " + b"X" * 54, end=b"\r\n"))  # 63 + CR: 64 bytes, fine
    port.write(raw_frame(b"5 " + b"X" * 55, end=b"\r\n"))  # 64 + CR: 65 bytes, overlong
    answer = port.request("4 " + "X" * 54)  # the answer to the CR one, from memory
    assert isinstance(answer, Err) and answer.kind == "unknown_command"
    assert executed(port, 6) == 4
    counted = stats(port, 7)
    assert counted["overlong"] == 2 and counted["duplicates"] == 1 and counted["bad_frame"] == 0


def test_an_overlong_body_leaves_the_boot_id_alone(port: BoardPort) -> None:
    boot = port.hello
    assert isinstance(boot, Hello)
    # 63 body bytes (hex digits) and no `*`: the board must not store past its body buffer
    port.write(b"$" + b"A" * 63 + b"B" * 8 + b"\n")
    port.write(b"$" + b"0" * 70 + b"*0000\n")
    hellos = [f for f in port.collect(2.3) if isinstance(f, Hello)]
    assert hellos and all(h == boot for h in hellos), (boot, hellos)
    assert port.request("1 PING") == Ok(1, ("1",))
    assert not [f for f in port.collect(1.2) if isinstance(f, Hello)], "HELLO stops once the host spoke"


def test_cr_without_lf_and_dollar_inside_a_body(target: Target, port: BoardPort) -> None:
    port.write(raw_frame(b"1 SET D2 1 60000", end=b"\r"))  # no `\n`: cut by the next `$`
    port.write(b"$2 SET D4 1 6$" + encode_body("3 PING")[1:])
    assert port.request("4 PING") == Ok(4, ("2",))  # only the two PINGs
    assert target.levels()["D2"] == 0 and target.levels()["D4"] == 0
    assert stats(port, 5)["bad_frame"] == 2


def test_a_duplicate_of_a_refused_request_is_refused_again(target: Target, port: BoardPort) -> None:
    assert port.request("9 SET D2 2 100") == Err(9, "bad_value", "level")
    assert port.request("9 SET D2 1 60000") == Err(9, "bad_value", "level")  # same number: from memory
    assert target.levels()["D2"] == 0
    assert executed(port, 10) == 2
    assert stats(port, 11)["duplicates"] == 1


def test_a_flood_of_noise_while_a_request_is_outstanding(target: Target, port: BoardPort) -> None:
    rng = random.Random(9)
    noise = bytes(rng.choice([b for b in range(256) if b != 0x24]) for _ in range(3000))
    port.write(encode_body("1 SET D7 1 60000") + noise)
    started = time.monotonic()
    answer = port.request("1 SET D7 1 60000", timeout=3.0)  # a retransmit after the noise
    assert answer == Ok(1) and time.monotonic() - started < 3.0
    assert target.levels()["D7"] == 1
    assert executed(port, 2) == 2
    counted = stats(port, 3)
    assert counted["duplicates"] == 1 and counted["rx_overflow"] == 0
    assert port.request("4 SET D7 0 100") == Ok(4)


def test_watchdog_expiry_status_and_period_frames(target: Target, port: BoardPort) -> None:
    assert port.request("1 SET D8 1 150") == Ok(1)
    item = port.request("2 STATUS D8")
    assert isinstance(item, Ok) and item.values[0].startswith("D8=1/")
    assert 0 < int(item.values[0].split("/")[1]) <= 151
    port.expect(Expired, timeout=2.0, channel="D8")
    assert port.request("3 STATUS D8") == Ok(3, ("D8=0/0",))
    assert target.levels()["D8"] == 0
    assert port.request("4 PERIOD A3 50") == Ok(4)
    port.expect(Ain, timeout=1.0, channel="A3")
    port.expect(Ain, timeout=1.0, channel="A3")
    assert port.request("5 PERIOD A3 0") == Ok(5)
    port.collect(0.05)
    assert not [f for f in port.collect(0.2) if isinstance(f, Ain)]
    answer = port.request("6 STATUS")
    assert isinstance(answer, Ok) and answer.values == AT_REST
