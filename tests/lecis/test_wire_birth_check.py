"""A command checked against a decoded `$birth` is refused exactly as the unit's module refuses it.

The hub validates commands without importing `edge`; these tests hold its
answer (kind, param, message, checked arguments) to the unit's own
`Module.check` for every example module, over arbitrary arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.driver import CommandRun, Driver, DriverResources
from edge.slm import Module
from lecis.command_check import check_against_birth
from lecis.commands import Command
from lecis.dcd import Dcd
from lecis.dcd_loader import load_dcd, parse_dcd
from lecis.errors import CommandRejected, CommandUnknown
from lecis.states import LecisState
from lecis.wire import Birth, BirthModule, decode, encode
from tests.edge.module_fakes import FakeUnit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dcd"
LABEL = """module: printer1
driver: line
port: /dev/ttyUSB7
pattern: '^(?P<count>[0-9]+)$'
readings:
  count: {unit: labels, min: 0, max: 100000}
commands:
  label:
    wire: "PRINT {text}"
    params:
      text: {type: string, max_length: 8}
      size: {type: string, enum: [small, large], default: small}
"""
DCDS = {dcd.module: dcd for dcd in (load_dcd(p) for p in sorted(EXAMPLES.glob("*.yaml")))}
DCDS["printer1"] = parse_dcd(LABEL, "printer1.yaml")
BIRTH = decode(Birth, encode(Birth("bench-1", "0.1.0", "b", "2026-11-21T15:04:05.123Z",
                                   {m: BirthModule.from_dcd(d) for m, d in DCDS.items()})))


class NoChecks(Driver):
    """A driver with no checks of its own: what is compared is the schema check, not a pump's state."""

    async def initialize(self) -> None:
        pass

    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        return {}


def idle_module(dcd: Dcd) -> tuple[Module, str]:
    unit = FakeUnit()
    module = Module(dcd, NoChecks, unit, DriverResources(), False)
    module.sm.state = LecisState.IDLE
    module.driver = NoChecks(dcd, module, DriverResources())
    token = unit.lease.acquire({"holder": "hub", "ttl_s": 60})["token"]
    return module, token


def outcome(check: Any) -> tuple[str, Any]:
    try:
        result = check()
    except CommandRejected as exc:
        return "rejected", exc.to_error()
    return "ok", result


async def same_as_unit(module_id: str, cmd: str, args: dict[str, Any]) -> None:
    module, token = idle_module(DCDS[module_id])
    unit_says = outcome(lambda: module.check(Command("c1", cmd, args, token))[2])
    hub_says = outcome(lambda: check_against_birth(BIRTH, module_id, cmd, args).args)
    assert hub_says == unit_says


CASES = [
    ("base_pump", "dose", {"ml": 2.5}), ("base_pump", "dose", {}), ("base_pump", "dose", {"ml": -1}),
    ("base_pump", "dose", {"ml": 1, "speed": 2}), ("base_pump", "run", {"seconds": "5"}),
    ("base_pump", "squirt", {}), ("base_pump", "status", {}), ("base_pump", "STATUS", {"x": 1}),
    ("aeration", "pulse", {"seconds": 10**400}), ("aeration", "on", {"speed": 1}),
    ("ph1", "cal_mid", {}), ("ph1", "cal_mid", {"point": 15}), ("ph1", "cal_mid", {"point": True}),
    ("turbidity1", "average", {"samples": 1.5}), ("turbidity1", "average", {}),
    ("turbidity1", "zero", {"x": None}),
    ("printer1", "label", {"text": "123456789"}), ("printer1", "label", {"text": "a;b"}),
    ("printer1", "label", {"text": "ok", "size": "huge"}), ("printer1", "label", {"text": "ok"}),
]


@pytest.mark.parametrize(("module", "cmd", "args"), CASES)
async def test_the_hub_refuses_as_the_unit_does(module: str, cmd: str, args: dict[str, Any]) -> None:
    await same_as_unit(module, cmd, args)


def test_an_unknown_module_is_an_unknown_command_naming_the_modules() -> None:
    with pytest.raises(CommandUnknown, match="unit bench-1 has no module 'ph9'") as caught:
        check_against_birth(BIRTH, "ph9", "STATUS", {})
    assert "ph1" in caught.value.message


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=70))
args_of = st.dictionaries(st.sampled_from(["ml", "seconds", "speed", "point", "samples", "us", "kpa", "temp",
                                           "text", "size", "x"]), json_scalar, max_size=3)
commands = st.sampled_from(sorted({c.name for d in DCDS.values() for c in d.commands} | {"STATUS", "nope"}))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(DCDS)), commands, args_of)
async def test_any_arguments_get_the_same_answer_from_hub_and_unit(module: str, cmd: str,
                                                                   args: dict[str, Any]) -> None:
    await same_as_unit(module, cmd, args)
