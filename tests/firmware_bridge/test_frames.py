"""firmware_bridge.frames: CRC, encoding, and a parser that never acts on a damaged frame."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import frames
from firmware_bridge.frames import Ain, Err, Expired, FrameError, Hello, Ok, Parser, Request

PROTOCOL = Path(__file__).resolve().parents[2] / "firmware_bridge" / "PROTOCOL.md"

body_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="$* "),
    min_size=1,
    max_size=8,
)
requests = st.builds(
    Request,
    seq=st.integers(1, 255),
    command=st.sampled_from(["PING", "SET", "PWM", "STEP", "READ", "PERIOD", "STATUS"]),
    args=st.lists(body_text, max_size=3).map(tuple),
)
board_frames = st.one_of(
    st.builds(Hello, protocol=st.integers(0, 9), firmware=st.just("0.1.0"),
              boot_id=st.text(alphabet="0123456789ABCDEF", min_size=8, max_size=8)),
    st.builds(Ok, seq=st.integers(1, 255), values=st.lists(body_text, max_size=3).map(tuple)),
    st.builds(Err, seq=st.integers(1, 255), kind=st.sampled_from(["bad_value", "bad_channel"]),
              detail=body_text),
    st.builds(Ain, channel=st.sampled_from(["A0", "A5"]), raw=st.integers(0, 1023)),
    st.builds(Expired, channel=st.sampled_from(["D2", "S1"])),
)
any_frame = st.one_of(requests, board_frames)


def test_crc_check_value_is_ccitt_false() -> None:
    assert frames.crc16(b"123456789") == 0x29B1
    assert frames.crc16(b"") == 0xFFFF


def test_every_protocol_example_has_the_crc_the_document_prints() -> None:
    text = PROTOCOL.read_text(encoding="utf-8")
    for _who, body, _note in frames.EXAMPLES:
        wire = frames.encode_body(body).decode().strip()
        assert wire in text, f"{wire} not in PROTOCOL.md"


def test_module_prints_the_examples() -> None:
    out = subprocess.run([sys.executable, "-m", "firmware_bridge.frames"], check=True,
                         capture_output=True, text=True).stdout
    assert "0x29B1" in out
    assert "$7 SET D2 1 2000*6047" in out


def test_examples_parse_to_typed_frames() -> None:
    parser = Parser()
    got = parser.feed(
        b"$0 HELLO 1 0.1.0 5A3C91F0*A69D\n$8 OK A0 512*233F\r\n$9 ERR unknown_command FOO*7438\n"
    )
    assert got == [Hello(1, "0.1.0", "5A3C91F0"), Ok(8, ("A0", "512")), Err(9, "unknown_command", "FOO")]


def test_encode_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(FrameError, match="not allowed"):
        frames.encode_body("1 SET D2 $")
    with pytest.raises(FrameError, match="at most 64"):
        frames.encode_body("1 " + "X" * 60)
    with pytest.raises(FrameError, match=r"1\.\.255"):
        frames.encode(Request(0, "PING"))


@given(any_frame)
@settings(deadline=None)  # a shared machine: a slow example is not a failure
def test_round_trip(frame: frames.Frame) -> None:
    try:
        wire = frames.encode(frame)
    except FrameError:
        return  # too long for 64 bytes: refused, never sent
    assert len(wire) <= frames.MAX_FRAME
    assert Parser().feed(wire) == [frame]


@given(st.binary(max_size=400))
@settings(max_examples=400, deadline=None)
def test_arbitrary_bytes_never_raise_and_only_yield_valid_frames(data: bytes) -> None:
    parser = Parser()
    for frame in parser.feed(data):
        # whatever came out re-encodes to bytes that occur in the input: it was really there
        assert frames.encode(frame) in data.replace(b"\r\n", b"\n")


def test_every_byte_value_alone_and_inside_a_frame() -> None:
    good = frames.encode(Request(5, "PING"))
    for value in range(256):
        parser = Parser()
        assert parser.feed(bytes([value])) == []
        damaged = good[:3] + bytes([value]) + good[3:]
        out = parser.feed(damaged + good)
        assert out[-1] == Request(5, "PING")  # the next good frame always gets through
        if value not in (0x24, 0x0A):
            assert len(out) == 1, value  # the damaged one is never returned


@given(st.lists(any_frame, min_size=1, max_size=6), st.data())
@settings(deadline=None)  # a shared machine: a slow example is not a failure
def test_split_at_every_offset(frame_list: list[frames.Frame], data: st.DataObject) -> None:
    wire = b"".join(_encodable(frame_list))
    expected = Parser().feed(wire)
    for cut in range(len(wire) + 1):
        parser = Parser()
        assert parser.feed(wire[:cut]) + parser.feed(wire[cut:]) == expected


def _encodable(frame_list: list[frames.Frame]) -> list[bytes]:
    out = []
    for f in frame_list:
        try:
            out.append(frames.encode(f))
        except FrameError:
            pass
    return out


@given(any_frame, st.integers(0, 63), st.integers(0, 255))
@settings(deadline=None)  # a shared machine: a slow example is not a failure
def test_one_corrupted_byte_is_never_acted_on(frame: frames.Frame, pos: int, value: int) -> None:
    try:
        wire = bytearray(frames.encode(frame))
    except FrameError:
        return
    pos %= len(wire)
    if wire[pos] == value:
        return
    wire[pos] = value
    parser = Parser()
    got = parser.feed(bytes(wire))
    # CRC-16 catches every single-byte change in the body; a `$` may start a (shorter) frame
    assert got == [] or (value == 0x24 and frames.encode(got[0]) in bytes(wire))
    c = parser.counters
    if pos not in (0, len(wire) - 1):  # a lost `$` or `\n` leaves no frame to count
        assert c.bad_crc + c.bad_frame + c.overlong >= 1


@given(any_frame, st.data())
@settings(deadline=None)  # a shared machine: a slow example is not a failure
def test_truncated_frame_is_dropped_and_next_one_parses(frame: frames.Frame, data: st.DataObject) -> None:
    try:
        wire = frames.encode(frame)
    except FrameError:
        return
    cut = data.draw(st.integers(1, len(wire) - 1))
    parser = Parser()
    assert parser.feed(wire[:cut]) == []
    assert parser.feed(wire) == [frame]  # the next `$` resynchronises
    assert parser.counters.bad_frame == (1 if cut > 1 else 0)


def test_overlong_frame_is_counted_and_the_receiver_waits_for_the_next_start() -> None:
    parser = Parser()
    long = b"$1 SET " + b"9" * 80 + b"*0000\n"
    assert parser.feed(long + frames.encode(Request(2, "PING"))) == [Request(2, "PING")]
    assert parser.counters.overlong == 1
    assert parser.counters.bad_crc == 0


def test_exactly_64_bytes_is_accepted() -> None:
    body = "1 OK " + "7" * 52
    wire = frames.encode_body(body)
    assert len(wire) == 64
    assert Parser().feed(wire) == [Ok(1, ("7" * 52,))]


def test_bad_crc_and_bad_body_are_counted_separately() -> None:
    parser = Parser()
    assert parser.feed(b"$7 OK*9B9E\n") == []
    assert parser.counters.bad_crc == 1
    body = b"0 HELLO x"
    assert parser.feed(b"$" + body + f"*{frames.crc16(body):04X}\n".encode()) == []
    assert parser.counters.bad_frame == 1
    body = b"7 OK\x01"
    assert parser.feed(b"$" + body + f"*{frames.crc16(body):04X}\n".encode()) == []
    assert parser.counters.bad_frame == 2


@given(st.lists(any_frame, min_size=1, max_size=20), st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_random_corruption_only_loses_frames_never_invents_them(frame_list: list[frames.Frame],
                                                               rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    wires = _encodable(frame_list)
    stream = bytearray(b"".join(wires))
    for _ in range(rnd.randint(1, 4)):
        i = rnd.randrange(len(stream))
        op = rnd.choice(["drop", "flip", "dup"])
        if op == "drop":
            del stream[i]
        elif op == "flip":
            stream[i] ^= 1 << rnd.randrange(8)
        else:
            stream.insert(i, stream[i])
    got = Parser().feed(bytes(stream))
    sent = set(wires)
    for frame in got:
        assert frames.encode(frame) in sent
