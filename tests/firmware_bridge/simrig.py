"""The board firmware in simavr, as a test fixture: build (make), start `simrig`, talk to it, stop it.

`simrig ELF` runs firmware_bridge/firmware/build/labedge-board.elf in real time with UART0 on a
pseudo-terminal (`SimRig.pty`, for the host code) and answers line commands on stdin that set the
analog inputs and read the emulated pins. Use it from a test module with

    from tests.firmware_bridge.simrig import SimRig, simrig_fixture  # noqa: F401

    def test_something(simrig: SimRig) -> None: ...

or `with start_rig() as rig:` outside pytest (benchmarks). Missing tools skip the tests locally
and fail them under CI=true (tests/conftest.py), since `make test` installs them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import select
import shutil
import subprocess
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_bridge import frames
from firmware_bridge.frames import Err, Frame, Hello, Ok

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware_bridge" / "firmware"
SIMRIG_DIR = ROOT / "firmware_bridge" / "simrig"
ELF = FIRMWARE_DIR / "build" / "labedge-board.elf"
SIMRIG = SIMRIG_DIR / "build" / "simrig"
ANSWER_TIMEOUT_S = 5.0


class RigUnavailable(RuntimeError):
    """The tools to build or run the emulated board are missing, or the build failed."""


@dataclass(frozen=True)
class Pin:
    level: int
    changed_at_us: int  # simulated time of the last change


@dataclass(frozen=True)
class Steps:
    count: int  # rising edges on the step pin since the rig started
    direction: int  # level of the direction pin: 1 for a positive rate
    interval_us: int  # between the last two steps (0 before two)


def missing_tools() -> str | None:
    """What is missing to build and run the rig, or None."""
    for tool in ("make", "avr-gcc", "avr-objcopy", "avr-size", "cc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    for header in ("/usr/lib/avr/include/avr/io.h", "/usr/include/simavr/sim_avr.h", "/usr/include/libelf.h"):
        if not Path(header).exists():
            return f"{header} is missing (avr-libc, libsimavr-dev, libelf-dev)"
    return None


@functools.cache
def build() -> tuple[Path, Path]:
    """Build the firmware and the rig (make does nothing when they are up to date)."""
    missing = missing_tools()
    if missing:
        raise RigUnavailable(f"{missing}; run `make test`, which installs the firmware tools")
    for directory in (FIRMWARE_DIR, SIMRIG_DIR):
        (directory / "build").mkdir(exist_ok=True)
        # Another test process may build the same tree at the same moment: one make at a time.
        with open(directory / "build" / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = subprocess.run(["make", "-s", "-C", str(directory)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RigUnavailable(f"make -C {directory} failed:\n{done.stdout}{done.stderr}")
    return ELF, SIMRIG


class SimRig:
    """A running simrig process; each method is one command line and its one-line answer."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._buf = b""
        first = self._line(ANSWER_TIMEOUT_S)
        if not first.startswith("pty "):
            raise RigUnavailable(f"simrig did not announce its pty: {first!r}")
        self.pty = first.split(" ", 1)[1]

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"simrig did not answer within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RigUnavailable(f"simrig exited (status {self.proc.poll()})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def command(self, line: str) -> str:
        """Send one command; its answer line. An `error ...` answer raises ValueError."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise RigUnavailable(f"simrig exited (status {self.proc.poll()})") from None
        answer = self._line(ANSWER_TIMEOUT_S)
        if answer.startswith("error "):
            raise ValueError(f"simrig: {line!r}: {answer[6:]}")
        return answer

    def adc(self, channel: str, millivolts: int) -> None:
        self.command(f"adc {channel} {millivolts}")

    def pin(self, name: str) -> Pin:
        _, _, level, changed = self.command(f"pin {name}").split()
        return Pin(int(level), int(changed))

    def pins(self) -> dict[str, int]:
        return {k: int(v) for k, v in (item.split("=") for item in self.command("pins").split()[1:])}

    def pwm(self, name: str = "D3") -> int:
        return int(self.command(f"pwm {name}").split()[2])

    def steps(self, name: str = "S1") -> Steps:
        _, _, count, direction, interval = self.command(f"steps {name}").split()
        return Steps(int(count), int(direction), int(interval))

    def time_us(self) -> int:
        return int(self.command("time").split()[1])

    def reset(self) -> int:
        """Reset the MCU (the firmware boots again and sends a new HELLO); simulated time of it."""
        return int(self.command("reset").split()[1])

    def hang(self) -> int:
        """Stop the firmware in a loop with interrupts off (only the AVR watchdog gets it out)."""
        return int(self.command("hang").split()[1])

    def wait_sim_us(self, duration_us: int, timeout: float = 30.0) -> int:
        """Wait until `duration_us` of simulated time passed; the simulated time then."""
        start = self.time_us()
        deadline = time.monotonic() + timeout
        while (now := self.time_us()) - start < duration_us:
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulated time moved {now - start} us in {timeout:g} s")
            time.sleep(min(0.05, (duration_us - (now - start)) / 1e6))
        return now

    def close(self) -> int:
        """Quit the rig; its exit status."""
        if self.proc.poll() is None:
            try:
                self.command("quit")
            except (OSError, TimeoutError, RigUnavailable, ValueError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):  # a broken pipe when the rig was killed
                    stream.close()
        return self.proc.returncode


class BoardPort:
    """The host end of the rig's pty, raw, for tests that speak frames to the firmware directly."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.parser = frames.Parser()
        self._frames: list[Frame] = []
        self.hello: Hello | None = None  # the boot HELLO, once seen by the fixture

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def send(self, body: str) -> None:
        self.write(frames.encode_body(body))

    def _fill(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if ready:
            try:
                self._frames.extend(self.parser.feed(os.read(self.fd, 4096)))
            except BlockingIOError:
                pass

    def collect(self, duration: float) -> list[Frame]:
        """Every frame received during `duration` seconds (and those already waiting)."""
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            self._fill(left)
        got, self._frames = self._frames, []
        return got

    def expect(self, kind: type[Frame], timeout: float = 2.0, **fields: object) -> Frame:
        """The next frame of that type with those field values; the frames before it are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            while self._frames:
                frame = self._frames.pop(0)
                if isinstance(frame, kind) and all(getattr(frame, k) == v for k, v in fields.items()):
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind.__name__} {fields or ''} from the board within {timeout:g} s")
            self._fill(left)

    def request(self, body: str, timeout: float = 1.0) -> Ok | Err:
        """Send `body` (`seq COMMAND ...`); the board's answer carrying that seq."""
        seq = int(body.split(" ", 1)[0])
        self.send(body)
        deadline = time.monotonic() + timeout
        while True:
            for i, frame in enumerate(self._frames):
                if isinstance(frame, Ok | Err) and frame.seq == seq:
                    del self._frames[i]
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {body!r} within {timeout:g} s")
            self._fill(left)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@contextmanager
def start_rig(elf: Path | None = None, log: Path | None = None) -> Iterator[SimRig]:
    """Build if needed, start simrig on the firmware (stderr to `log`), stop it afterwards."""
    firmware, simrig = build()
    stderr = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen([str(simrig), str(elf or firmware)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr)
    try:
        rig = SimRig(proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if log and not isinstance(stderr, int):
            stderr.close()
    try:
        yield rig
    finally:
        rig.close()


def require_rig() -> None:
    """Skip (fail under CI=true, where `make test` installed everything) when the rig cannot build."""
    try:
        build()
    except RigUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the emulated board is needed on CI: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(name="simrig")
def simrig_fixture(tmp_path: Path) -> Iterator[SimRig]:
    """The firmware running in simavr; its stderr in tmp_path/simrig.log."""
    require_rig()
    with start_rig(log=tmp_path / "simrig.log") as rig:
        yield rig


@pytest.fixture(name="board_port")
def board_port_fixture(simrig: SimRig) -> Iterator[BoardPort]:
    """The host end of `simrig`'s pty, once the boot HELLO came (`port.hello`; import simrig_fixture too).

    Like a host, it waits for HELLO: bytes sent while the firmware still boots are lost.
    """
    port = BoardPort(simrig.pty)
    try:
        hello = port.expect(Hello, timeout=5.0)
        assert isinstance(hello, Hello)
        port.hello = hello
        yield port
    finally:
        port.close()
