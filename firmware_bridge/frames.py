"""Board frames (firmware_bridge/PROTOCOL.md): CRC, encoder, incremental parser. No I/O.

`$<body>*<CRC>\\n`, body = `<seq> <TYPE> [fields...]`, CRC-16/CCITT-FALSE over the body.
The parser takes bytes as they come and yields typed frames; anything it cannot
trust is dropped and counted, never returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from lecis.errors import LabedgeError

START = 0x24  # $
END_BODY = 0x2A  # *
NEWLINE = 0x0A
MAX_FRAME = 64  # bytes from `$` to `\n` included
MAX_SEQ = 255


class FrameError(LabedgeError, ValueError):
    """A frame that cannot be built or parsed; the message says which field."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final XOR (check 0x29B1)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _check_body(body: str) -> bytes:
    raw = body.encode("ascii", errors="replace")
    for b in raw:
        if b < 0x20 or b > 0x7E or b in (START, END_BODY):
            raise FrameError(
                f"frame body {body!r}: byte 0x{b:02X} is not allowed (printable ASCII, no $ or *)"
            )
    return raw


def encode_body(body: str) -> bytes:
    """`body` -> `$body*CRC\\n`; raises FrameError when the body has a bad byte or is too long."""
    raw = _check_body(body)
    frame = b"$" + raw + b"*" + f"{crc16(raw):04X}".encode() + b"\n"
    if len(frame) > MAX_FRAME:
        raise FrameError(f"frame {body!r} is {len(frame)} bytes; at most {MAX_FRAME} fit")
    return frame


# --- typed frames --------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    protocol: int
    firmware: str
    boot_id: str
    seq: int = 0


@dataclass(frozen=True)
class Ok:
    seq: int
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Err:
    seq: int
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class Ain:
    channel: str
    raw: int
    seq: int = 0


@dataclass(frozen=True)
class Expired:
    channel: str
    seq: int = 0


@dataclass(frozen=True)
class Request:
    """A host -> board request: `seq COMMAND args...` (what the firmware parses)."""

    seq: int
    command: str
    args: tuple[str, ...] = ()


Frame = Hello | Ok | Err | Ain | Expired | Request


def encode(frame: Frame) -> bytes:
    """The wire bytes of one typed frame."""
    return encode_body(body_of(frame))


def body_of(frame: Frame) -> str:
    if isinstance(frame, Request):
        if not 1 <= frame.seq <= MAX_SEQ:
            raise FrameError(f"request seq {frame.seq}: must be 1..{MAX_SEQ} (0 is the board's)")
        return " ".join([str(frame.seq), frame.command, *frame.args])
    if isinstance(frame, Hello):
        return f"0 HELLO {frame.protocol} {frame.firmware} {frame.boot_id}"
    if isinstance(frame, Ok):
        return " ".join([str(frame.seq), "OK", *frame.values])
    if isinstance(frame, Err):
        return " ".join(p for p in (str(frame.seq), "ERR", frame.kind, frame.detail) if p)
    if isinstance(frame, Ain):
        return f"0 AIN {frame.channel} {frame.raw}"
    return f"0 EXPIRED {frame.channel}"


def _int(text: str, lo: int, hi: int, what: str) -> int:
    if not text.isdigit() and not (text.startswith("-") and text[1:].isdigit()):
        raise FrameError(f"{what} {text!r} is not a decimal number")
    value = int(text)
    if not lo <= value <= hi:
        raise FrameError(f"{what} {value} is outside {lo}..{hi}")
    return value


def parse_body(body: str) -> Frame:
    """Typed frame of a body whose CRC already checked; FrameError when it does not parse."""
    parts = body.split(" ")
    if len(parts) < 2 or any(not p for p in parts):
        raise FrameError(f"body {body!r}: expected '<seq> <TYPE> ...' with single spaces")
    seq_text, kind, rest = parts[0], parts[1], parts[2:]
    if not seq_text.isdigit() or len(seq_text) > 3:
        raise FrameError(f"body {body!r}: seq {seq_text!r} is not 0..255")
    seq = _int(seq_text, 0, MAX_SEQ, "seq")
    if kind == "HELLO":
        if seq != 0 or len(rest) != 3:
            raise FrameError(f"body {body!r}: HELLO is '0 HELLO <protocol> <firmware> <boot_id>'")
        boot = rest[2]
        if len(boot) != 8 or any(c not in "0123456789ABCDEFabcdef" for c in boot):
            raise FrameError(f"body {body!r}: boot id {boot!r} is not 8 hex digits")
        return Hello(_int(rest[0], 0, 65535, "protocol"), rest[1], boot.upper())
    if kind == "OK":
        return Ok(seq, tuple(rest))
    if kind == "ERR":
        if not rest:
            raise FrameError(f"body {body!r}: ERR needs a kind")
        return Err(seq, rest[0], " ".join(rest[1:]))
    if kind == "AIN":
        if seq != 0 or len(rest) != 2:
            raise FrameError(f"body {body!r}: AIN is '0 AIN <ch> <raw>'")
        return Ain(rest[0], _int(rest[1], 0, 1023, "raw"))
    if kind == "EXPIRED":
        if seq != 0 or len(rest) != 1:
            raise FrameError(f"body {body!r}: EXPIRED is '0 EXPIRED <ch>'")
        return Expired(rest[0])
    if seq == 0:
        raise FrameError(f"body {body!r}: unknown board frame {kind!r}")
    return Request(seq, kind, tuple(rest))


# --- incremental parser --------------------------------------------------------------------


@dataclass
class ParserCounters:
    frames: int = 0
    bad_crc: int = 0
    bad_frame: int = 0
    overlong: int = 0
    noise: int = 0  # bytes outside any frame

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Parser:
    """Feed bytes, get frames. Resynchronises on `$`; a frame over 64 bytes is dropped at its 65th."""

    counters: ParserCounters = field(default_factory=ParserCounters)
    _buf: bytearray = field(default_factory=bytearray)
    _in_frame: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        return list(self.iter_feed(data))

    def iter_feed(self, data: bytes) -> Iterator[Frame]:
        for byte in data:
            frame = self._byte(byte)
            if frame is not None:
                yield frame

    def _byte(self, byte: int) -> Frame | None:
        if byte == START:
            if self._in_frame and len(self._buf) > 1:
                self.counters.bad_frame += 1  # a frame cut short by the next `$`
            self._buf = bytearray(b"$")
            self._in_frame = True
            return None
        if not self._in_frame:
            self.counters.noise += 1
            return None
        self._buf.append(byte)
        if byte == NEWLINE:
            self._in_frame = False
            return self._finish(bytes(self._buf))
        if len(self._buf) >= MAX_FRAME:  # 64 bytes held, no `\n`: the 65th byte cannot be valid
            self.counters.overlong += 1
            self._in_frame = False
            self._buf = bytearray()
        return None

    def _finish(self, frame: bytes) -> Frame | None:
        # frame = $ body * CCCC [\r] \n
        if frame.endswith(b"\r\n"):
            frame = frame[:-2] + b"\n"
        star = frame.rfind(b"*")
        if star < 0 or len(frame) - star != 6:
            self.counters.bad_frame += 1
            return None
        body, crc_text = frame[1:star], frame[star + 1 : -1]
        if any(b < 0x20 or b > 0x7E or b == END_BODY for b in body):
            self.counters.bad_frame += 1
            return None
        if any(c not in b"0123456789ABCDEF" for c in crc_text):
            self.counters.bad_frame += 1
            return None
        if int(crc_text, 16) != crc16(body):
            self.counters.bad_crc += 1
            return None
        try:
            parsed = parse_body(body.decode("ascii"))
        except FrameError:
            self.counters.bad_frame += 1
            return None
        self.counters.frames += 1
        return parsed


# --- PROTOCOL.md examples ------------------------------------------------------------------

EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("board", "0 HELLO 1 0.1.0 5A3C91F0", "board boots (boot id 5A3C91F0)"),
    ("host→", "7 SET D2 1 2000", "pump on D2, watchdog 2 s"),
    ("board", "7 OK", ""),
    ("host→", "8 READ A0", ""),
    ("board", "8 OK A0 512", ""),
    ("host→", "9 FOO", ""),
    ("board", "9 ERR unknown_command FOO", ""),
)


def example_lines() -> list[str]:
    lines = [f"check: crc16(b'123456789') = 0x{crc16(b'123456789'):04X}"]
    for who, body, note in EXAMPLES:
        wire = encode_body(body).decode("ascii").rstrip("\n")
        lines.append(f"{who} {wire:<34}{note}".rstrip())
    return lines


def main() -> None:
    print("\n".join(example_lines()))


if __name__ == "__main__":
    main()
