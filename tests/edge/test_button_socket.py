"""edge/button_socket.py: simulated presses reach the unit's own button logic, over a private socket."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.button_socket import ButtonSocket, ButtonSocketUnusable
from edge.buttons import UnitButtons
from labedge.lab_button import UnitUnreachable, ask_unit
from lecis.clock import ScaledClock
from lecis.unit_config import ButtonsConfig


def _unit(factory: MockFactory, clock: ScaledClock) -> SimpleNamespace:
    buttons = ButtonsConfig(start_pin=5, stop_pin=6, estop_hold_s=2.0, debounce_s=0.05)
    return SimpleNamespace(id="bench-1", config=SimpleNamespace(buttons=buttons), clock=clock,
                           resources=SimpleNamespace(pin_factory=factory))


def _folder(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return run


async def _serve(tmp_path: Path, lines: list[str]) -> tuple[list[str], list[tuple[str, str]], int]:
    factory = MockFactory(pin_class=MockPWMPin)
    clock = ScaledClock(20.0)
    unit = _unit(factory, clock)
    actions: list[tuple[str, str]] = []
    buttons = UnitButtons(5, 6, factory, clock, 0.05, 2.0, True, lambda b, a: actions.append((b, a)))
    await buttons.start()
    path = _folder(tmp_path) / "bench-1.button"
    server = ButtonSocket(unit, path)  # type: ignore[arg-type]
    await server.start()
    mode = stat.S_IMODE(path.stat().st_mode)
    try:
        answers = [await ask_unit(path, line, 10.0) if not line.startswith("!") else
                   await _raw(path, line[1:]) for line in lines]
    finally:
        await server.close()
        buttons.close()
        factory.close()
    assert not path.exists()
    return answers, actions, mode


async def _raw(path: Path, line: str) -> str:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(line.encode() + b"\n")
    answer = await reader.readline()
    writer.close()
    return answer.decode().strip()


def test_a_press_and_a_hold_are_seen_by_the_units_buttons(tmp_path: Path) -> None:
    answers, actions, mode = asyncio.run(_serve(tmp_path, ["press start", "press stop", "hold stop",
                                                           "!hold start", "!rm -rf /"]))
    assert mode == 0o600
    assert answers[:3] == ["ok press start on bench-1", "ok press stop on bench-1", "ok hold stop on bench-1"]
    assert answers[3].startswith("error only the stop button is held")
    assert answers[4].startswith("error expected: press start")
    assert actions == [("start", "pressed"), ("stop", "pressed"), ("stop", "pressed"), ("stop", "held")]


def test_a_folder_others_can_write_or_a_path_that_is_not_our_socket_is_refused(tmp_path: Path) -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    unit = _unit(factory, ScaledClock(1.0))
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(ButtonSocketUnusable, match="writable by nobody else"):
        asyncio.run(ButtonSocket(unit, shared / "bench-1.button").start())  # type: ignore[arg-type]
    run = _folder(tmp_path)
    (run / "bench-1.button").write_text("not a socket")
    with pytest.raises(ButtonSocketUnusable, match="not a socket of ours"):
        asyncio.run(ButtonSocket(unit, run / "bench-1.button").start())  # type: ignore[arg-type]
    assert (run / "bench-1.button").read_text() == "not a socket"
    factory.close()


def test_no_unit_listening_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnitUnreachable, match="takes no presses"):
        asyncio.run(ask_unit(_folder(tmp_path) / "bench-9.button", "press start", 1.0))


def test_a_path_too_long_for_a_unix_socket_is_refused_by_name(tmp_path: Path) -> None:
    deep = _folder(tmp_path) / ("d" * 120)
    with pytest.raises(ButtonSocketUnusable, match="at most 107 bytes"):
        asyncio.run(ButtonSocket(_unit(MockFactory(), ScaledClock(1.0)), deep / "b.button").start())  # type: ignore[arg-type]
