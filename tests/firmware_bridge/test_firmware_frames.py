"""The firmware in simavr: bad frames are counted and never acted on, errors are answered, and a
duplicate request is answered again without being executed twice."""

from __future__ import annotations

from firmware_bridge.frames import Err, Ok, crc16, encode_body
from tests.firmware_bridge.simrig import BoardPort, SimRig, board_port_fixture, simrig_fixture  # noqa: F401


def stats(port: BoardPort, seq: int) -> dict[str, int]:
    answer = port.request(f"{seq} STATS")
    assert isinstance(answer, Ok)
    names = ("bad_crc", "bad_frame", "overlong", "duplicates", "rx_overflow")
    return dict(zip(names, map(int, answer.values), strict=True))


def executed(port: BoardPort, seq: int) -> int:
    answer = port.request(f"{seq} PING")
    assert isinstance(answer, Ok)
    return int(answer.values[0])


BAD_REQUESTS: list[tuple[str, str | None, str]] = [
    # body, the error kind, its detail
    ("FOO", "unknown_command", "FOO"),
    ("set D2 1 100", "unknown_command", "set"),
    ("SET D9 1 100", "bad_channel", "D9"),
    ("SET D3 1 100", "bad_channel", "D3"),  # the PWM output is not a digital one
    ("SET A0 1 100", "bad_channel", "A0"),
    ("PWM D2 10 100", "bad_channel", "D2"),
    ("STEP S2 10 100", "bad_channel", "S2"),
    ("READ D2", "bad_channel", "D2"),
    ("READ A6", "bad_channel", "A6"),
    ("PERIOD A9 100", "bad_channel", "A9"),
    ("STATUS X1", "bad_channel", "X1"),
    ("SET D2 1 60000", None, ""),  # a good one in the middle: later errors still answered
    ("SET D2 2 100", "bad_value", "level"),
    ("SET D2 1 0", "bad_value", "max_ms"),
    ("SET D2 1 600001", "bad_value", "max_ms"),
    ("SET D2 1 -5", "bad_value", "max_ms"),
    ("PWM D3 256 100", "bad_value", "duty"),
    ("PWM D3 -1 100", "bad_value", "duty"),
    ("STEP S1 2001 100", "bad_value", "rate"),
    ("STEP S1 -2001 100", "bad_value", "rate"),
    ("STEP S1 1x 100", "bad_value", "rate"),
    ("PERIOD A0 49", "bad_value", "ms"),
    ("SET D2 1", "bad_frame", "SET"),
    ("SET D2 1 100 7", "bad_frame", "SET"),
    ("PING 1", "bad_frame", "PING"),
]
AT_REST = ("D2=0/0", "D4=0/0", "D7=0/0", "D8=0/0", "D3=0/0", "S1=0/0")


def test_bad_requests_are_answered_with_err_and_change_nothing(simrig: SimRig, board_port: BoardPort) -> None:
    for seq, (body, kind, detail) in enumerate(BAD_REQUESTS, start=1):
        answer = board_port.request(f"{seq} {body}")
        if kind is None:
            assert answer == Ok(seq)
            board_port.request(f"{seq + 100} SET D2 0 60000")
            continue
        assert answer == Err(seq, kind, detail), body
        assert simrig.pins() == {"D2": 0, "D3": 0, "D4": 0, "D5": 0, "D6": 0, "D7": 0, "D8": 0}, body
        assert board_port.request(f"{seq + 200} STATUS") == Ok(seq + 200, AT_REST), body
    assert simrig.pwm("D3") == 0


def test_a_long_unknown_command_is_answered_in_one_bounded_frame(board_port: BoardPort) -> None:
    name = "X" * 50
    answer = board_port.request(f"9 {name}")
    assert isinstance(answer, Err) and answer.kind == "unknown_command"
    assert name.startswith(answer.detail) and len(encode_body(f"9 ERR {answer.kind} {answer.detail}")) <= 64


def test_a_bad_crc_is_counted_and_not_acted_on(simrig: SimRig, board_port: BoardPort) -> None:
    body = b"3 SET D2 1 60000"
    good = crc16(body)
    for crc in (good ^ 0x0001, good ^ 0x8000):
        board_port.write(b"$" + body + b"*%04X\n" % crc)
    board_port.write(b"$" + body.replace(b"D2", b"D4") + b"*%04X\n" % good)  # a flipped body byte
    assert board_port.request("4 PING") == Ok(4, ("1",))  # only the PING was executed
    assert simrig.pins()["D2"] == 0 and simrig.pins()["D4"] == 0
    assert stats(board_port, 5)["bad_crc"] == 3


def test_overlong_and_malformed_frames_are_dropped_and_the_next_frame_works(
    simrig: SimRig, board_port: BoardPort
) -> None:
    body = b"3 SET D2 1 60000 " + b"0" * 45  # 70 bytes on the wire, a CRC that matches
    board_port.write(b"$" + body + b"*%04X\n" % crc16(body))
    board_port.write(b"$3 SET D2 1 6\x010000*0000\n")  # a control byte in the body
    board_port.write(b"$3 SET D2 1 60000*12g4\n")  # not a hex CRC
    board_port.write(b"$3 SET D2 1 60")  # cut short by the next frame's `$`
    board_port.write(encode_body("3 SET D7 1 60000"))
    assert board_port.request("4 PING") == Ok(4, ("2",))  # SET D7, then this PING
    assert simrig.pins()["D2"] == 0 and simrig.pins()["D7"] == 1
    counted = stats(board_port, 5)
    assert counted["overlong"] == 1
    assert counted["bad_frame"] == 3


def test_bodies_that_are_no_request_are_dropped_unanswered(simrig: SimRig, board_port: BoardPort) -> None:
    for body in ("0 SET D2 1 60000", "256 SET D2 1 60000", "x SET D2 1 60000", "3  SET D2 1 60000",
                 "3 SET D2 1 60000 ", "3"):
        board_port.send(body)
    assert board_port.request("4 PING") == Ok(4, ("1",))
    assert simrig.pins()["D2"] == 0
    assert stats(board_port, 5)["bad_frame"] == 6


def test_a_duplicate_is_answered_again_but_executed_once(simrig: SimRig, board_port: BoardPort) -> None:
    assert executed(board_port, 1) == 1
    assert board_port.request("2 STEP S1 1000 60000") == Ok(2)
    for _ in range(3):  # a retransmit: same number, same frame
        assert board_port.request("2 STEP S1 1000 60000") == Ok(2)
    assert executed(board_port, 3) == 3
    assert board_port.request("3 PING") == Ok(3, ("3",))  # a duplicate PING: the remembered answer
    assert board_port.request("4 SET D8 1 60000") == Ok(4)
    assert board_port.request("4 SET D8 0 60000") == Ok(4)  # a reused number is not executed
    assert simrig.pin("D8").level == 1
    assert board_port.request("5 FOO") == Err(5, "unknown_command", "FOO")
    assert board_port.request("5 FOO") == Err(5, "unknown_command", "FOO")
    assert executed(board_port, 6) == 6
    assert stats(board_port, 7)["duplicates"] == 6


def test_many_requests_back_to_back_each_answered_once(board_port: BoardPort) -> None:
    for n in range(300):
        seq = n % 255 + 1
        assert board_port.request(f"{seq} SET D2 {n % 2} 60000") == Ok(seq)
    assert executed(board_port, 47) == 301
    counted = stats(board_port, 48)
    assert counted == {"bad_crc": 0, "bad_frame": 0, "overlong": 0, "duplicates": 0, "rx_overflow": 0}


def test_a_burst_of_frames_written_at_once_loses_none(board_port: BoardPort) -> None:
    # 800 bytes at once: simavr's UART drains slower than the line (it counts a parity bit), so its
    # 64-byte FIFO fills and the rig must hold bytes back while the UART says XOFF.
    board_port.write(b"".join(encode_body(f"{seq} SET D4 {seq % 2} 60000") for seq in range(1, 41)))
    answers = [board_port.request(f"{seq} SET D4 {seq % 2} 60000", timeout=3.0) for seq in range(40, 41)]
    assert answers == [Ok(40)]
    assert executed(board_port, 41) == 41
