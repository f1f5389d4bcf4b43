"""The session commands fuzzed: sequences of valid and hostile `session.*` on `lab/hub/$cmd` over restarts.

Each run drives the hub's command handler (raw `$cmd` payloads in, replies
out) with the real session log on a temporary folder, mixed with button
presses and restarts of the log (closed and opened again, as a hub restart
does), and checks every reply against a model: one open session per unit,
refusals of kind `state` naming the open session, hostile arguments refused
as `validation` naming their `param` with nothing stored, and after each
restart the same open sessions (with a RECOVERED event).

`LABEDGE_HUB_FUZZ_EXAMPLES` (default 25) sets how many runs (a soak: `LABEDGE_HUB_FUZZ_EXAMPLES=1000
pytest --timeout=0 tests/system/test_sessions_fuzz.py`); each run is at
most 30 steps, so the default stays around ten seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.hub_commands import HubCommands
from hub.sessions.commands import SessionCommands
from hub.sessions.log import LOG_NAME
from hub.sessions.model import SessionRefused, SessionSource, SessionState
from hub.sessions.service import NoUploads, SessionService
from lecis.clock import ScaledClock
from lecis.errors import CommandRejected
from tests.hub.sessions.test_service import FakeRecorder
from tests.system.hub_fuzz_payloads import any_text, dumps, json_values

UNITS = ("u1", "u2", "u3")
BAD_UNITS = ["", "U1", "-u", "u" * 33, "hub", "u1/x", "u1\ud800", "+", "#", "u1 ", "ü1", "u1\n"]
EXAMPLES = int(os.environ.get("LABEDGE_HUB_FUZZ_EXAMPLES", "25"))


@dataclass(frozen=True)
class Step:
    kind: str  # "cmd" (a $cmd payload), "button" (a unit's press), "restart", "race"
    cmd: str = ""
    args: Any = None
    unit: str = ""
    hostile: bool = False  # arguments that may be refused: only "nothing stored when refused" is checked

    def __repr__(self) -> str:
        shown = ascii(self.args)  # lone surrogates cannot be printed
        return f"Step({self.kind} {self.cmd or self.unit} {shown[:300]}{'...' if len(shown) > 300 else ''})"


hostile_value = st.one_of(json_values(), st.sampled_from(BAD_UNITS), st.text(max_size=300),
                          st.integers(), st.just("x" * 5000))


@st.composite
def step(draw: st.DrawFn) -> Step:
    kind = draw(st.sampled_from(["start", "stop", "stop", "list", "show", "button", "button", "restart",
                                 "race", "hostile", "hostile"]))
    unit = draw(st.sampled_from(UNITS))
    if kind == "start":
        args: dict[str, Any] = {"unit": unit}
        if draw(st.booleans()):
            args["experiment"] = draw(st.text(st.characters(categories=["L", "N", "Zs", "P", "So"]),
                                              min_size=1, max_size=40).filter(str.strip))
        if draw(st.booleans()):
            args["user"] = draw(st.sampled_from(["ana", "bo", "\U0001f9ea lab"]))
        return Step("cmd", "session.start", args, unit)
    if kind == "stop":
        args = {"unit": unit}
        pick = draw(st.sampled_from(["none", "open", "other"]))
        if pick != "none":
            args["session_id"] = pick  # resolved against the model when the step runs
        return Step("cmd", "session.stop", args, unit)
    if kind == "list":
        args = {} if draw(st.booleans()) else {"unit": unit}
        if draw(st.booleans()):
            args["limit"] = draw(st.integers(1, 200))
        return Step("cmd", "session.list", args, unit)
    if kind == "show":
        return Step("cmd", "session.show", {"unit": unit}, unit)
    if kind == "button":
        return Step("button", draw(st.sampled_from(["start", "stop"])), None, unit)
    if kind in ("restart", "race"):
        return Step(kind, unit=unit)
    cmd = draw(st.sampled_from(["session.start", "session.stop", "session.list", "session.show"]))
    args = draw(st.one_of(
        st.dictionaries(st.sampled_from(["unit", "experiment", "user", "session_id", "limit", "source"]),
                        hostile_value, max_size=4),
        st.dictionaries(any_text, hostile_value, max_size=3),
        json_values()))
    return Step("cmd", cmd, args, unit, hostile=True)


class Run:
    """The hub's command handler over a real session log, and the model it is checked against."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clock = ScaledClock(1000.0, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        self.replies: list[dict[str, Any]] = []
        self.open: dict[str, str] = {}  # the model: unit -> its open session
        self.ids: set[str] = set()
        self.service: SessionService | None = None
        self.handler: HubCommands | None = None

    async def __aenter__(self) -> Run:
        self.service = SessionService(self.folder / LOG_NAME, self.folder, self.clock, FakeRecorder(),
                                      NoUploads(), known_units=lambda: set(UNITS))
        await self.service.__aenter__()

        async def publish(payload: bytes) -> None:
            self.replies.append(json.loads(payload.decode("utf-8")))

        self.handler = HubCommands(None, publish, self.clock,
                                   session_handler=SessionCommands(self.service, lambda: set(UNITS)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.handler is not None:
            await self.handler.close()
        if self.service is not None:
            await self.service.__aexit__(None, None, None)

    async def call(self, cmd: str, args: Any) -> dict[str, Any]:
        assert self.handler is not None
        cid = str(uuid.uuid4())
        seen = len(self.replies)
        self.handler.feed(dumps({"id": cid, "cmd": cmd, "args": args}))
        while self.handler._tasks:
            await asyncio.gather(*list(self.handler._tasks))
        finals = [r for r in self.replies if r.get("id") == cid and r["status"] != "accepted"]
        if not finals:  # NaN or Infinity anywhere: not JSON, so not even the id is read (docs/protocol.md)
            finals = [r for r in self.replies[seen:] if r.get("id") is None]
            assert finals and finals[0]["status"] == "rejected", finals
            error = finals[0]["error"]
            assert error["kind"] == "validation" and "JSON" in error["message"], finals
            finals[0]["error"]["param"] = finals[0]["error"].get("param") or "args"
        assert len(finals) == 1, finals
        return finals[0]

    async def settled(self) -> None:
        """Until the final transfers running in the background are done (they add VERIFIED events)."""
        assert self.service is not None
        while self.service._finals:
            await asyncio.gather(*list(self.service._finals.values()), return_exceptions=True)

    def stored(self) -> tuple[int, int]:
        assert self.service is not None and self.service.log is not None
        sessions = self.service.list(limit=10**6)
        return len(sessions), sum(len(self.service.events(s.id)) for s in sessions)

    async def do(self, s: Step) -> None:
        assert self.service is not None
        if s.kind == "restart":
            await self.__aexit__()
            await self.__aenter__()
            for unit, session_id in self.open.items():
                assert self.service.current(unit) is not None
                assert self.service.current(unit).id == session_id  # type: ignore[union-attr]
                assert self.service.events(session_id)[-1]["kind"] == "RECOVERED"
            return
        if s.kind == "race":  # button and CLI at once: only the invariants are checked afterwards
            results = await asyncio.gather(
                self.service.start(s.unit, source=SessionSource.BUTTON),
                self.call("session.start", {"unit": s.unit}),
                self.service.stop(s.unit, source=SessionSource.BUTTON),
                self.call("session.stop", {"unit": s.unit}), return_exceptions=True)
            for result in results:
                assert isinstance(result, (dict, SessionRefused)) or hasattr(result, "id"), result
            current = self.service.current(s.unit)
            if current is None:
                self.open.pop(s.unit, None)
            else:
                self.open[s.unit] = current.id
            self.ids |= {x.id for x in self.service.list(s.unit, 10**6)}
            return
        if s.kind == "button":
            await self.button(s)
            return
        if s.hostile:
            await self.settled()
            before = self.stored()
            reply = await self.call(s.cmd, s.args)
            if reply["status"] == "rejected":
                assert reply["error"]["kind"] in ("validation", "state", "unknown_command"), reply
                if reply["error"]["kind"] == "validation":
                    assert isinstance(reply["error"].get("param"), str) and reply["error"]["param"], reply
                assert self.stored() == before, "a refused command stored nothing"
            else:
                assert reply["status"] == "done", reply
                self.learn(s.cmd, reply)
            return
        await self.valid(s)

    async def button(self, s: Step) -> None:
        assert self.service is not None
        try:
            if s.cmd == "start":
                session = await self.service.start(s.unit, source=SessionSource.BUTTON)
                assert s.unit not in self.open
                self.open[s.unit] = session.id
                self.ids.add(session.id)
            else:
                session = await self.service.stop(s.unit, source=SessionSource.BUTTON)
                assert self.open.pop(s.unit) == session.id
        except SessionRefused as exc:
            assert (s.unit in self.open) == (s.cmd == "start"), exc
            if s.cmd == "start":
                assert self.open[s.unit] in str(exc)

    async def valid(self, s: Step) -> None:
        args = dict(s.args)
        if args.get("session_id") == "open":
            args["session_id"] = self.open.get(s.unit, str(uuid.uuid4()))
        elif args.get("session_id") == "other":
            args["session_id"] = str(uuid.uuid4())
        reply = await self.call(s.cmd, args)
        open_one = self.open.get(s.unit)
        if s.cmd == "session.start":
            if open_one is None:
                assert reply["status"] == "done", reply
                self.learn(s.cmd, reply)
            else:
                assert reply["status"] == "rejected" and reply["error"]["kind"] == "state", reply
                assert open_one in reply["error"]["message"]
        elif s.cmd == "session.stop":
            if open_one is not None and args.get("session_id") in (None, open_one):
                assert reply["status"] == "done" and reply["result"]["session"]["id"] == open_one, reply
                assert reply["result"]["session"]["state"] in ("closing", "closed")
                self.open.pop(s.unit)
            else:
                assert reply["status"] == "rejected" and reply["error"]["kind"] == "state", reply
        elif s.cmd == "session.list":
            assert reply["status"] == "done", reply
            listed = reply["result"]["sessions"]
            assert all(x["unit"] == args["unit"] for x in listed) if "unit" in args else True
            mine = [x["id"] for x in listed if x["state"] == "open"]
            expected = {i for u, i in self.open.items() if "unit" not in args or u == args["unit"]}
            if len(listed) < args.get("limit", 100):
                assert set(mine) == expected, (mine, expected)
        else:
            assert reply["status"] == "done", reply
            shown = reply["result"]["session"]
            if open_one is not None:
                assert shown["id"] == open_one and shown["state"] == "open"
                assert reply["result"]["events"][0]["kind"] == "START"

    def learn(self, cmd: str, reply: dict[str, Any]) -> None:
        session = (reply.get("result") or {}).get("session")
        if cmd == "session.start" and session:
            assert session["unit"] not in self.open
            self.open[session["unit"]] = session["id"]
            self.ids.add(session["id"])
        elif cmd == "session.stop" and session:
            assert self.open.pop(session["unit"]) == session["id"]

    def check(self) -> None:
        assert self.service is not None
        for unit in UNITS:
            opened = [x for x in self.service.list(unit, 10**6) if x.state is SessionState.OPEN]
            assert len(opened) <= 1, opened
            assert [x.id for x in opened] == ([self.open[unit]] if unit in self.open else [])
        for session in self.service.list(limit=10**6):
            assert session.id in self.ids
            kinds = [e["kind"] for e in self.service.events(session.id)]
            assert kinds[0] == "START" and kinds.count("START") == 1, kinds
            assert (kinds.count("END") == 1) == (session.state is not SessionState.OPEN), kinds
            assert session.ended_at is None or session.ended_at >= session.started_at


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])
@given(st.lists(step(), min_size=1, max_size=30))
def test_session_command_sequences_follow_the_rules_over_restarts(steps: list[Step]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="labedge-session-fuzz-") as folder:
            async with Run(Path(folder)) as hub:
                for number, s in enumerate(steps):
                    try:
                        await hub.do(s)
                        hub.check()
                    except AssertionError as exc:  # hypothesis cannot print steps holding lone surrogates
                        done = "\n".join(ascii(x) for x in steps[:number + 1])
                        raise AssertionError(f"{exc}\nafter the steps:\n{done}") from None
            async with Run(Path(folder)) as again:  # the log reads back whole after the last step
                again.open, again.ids = hub.open, hub.ids
                again.check()

    asyncio.run(run())


BAD_TEXT = ["", "   ", "a\nb", "ok\ud800", "\u202eevil", "\x1b[2J", 5, 5.5, True, [], {}, "x" * 5000]
BAD_LIMIT = [0, -1, 201, 10**30, True, "5", 5.5, [], {}]
BAD = {"unit": [*BAD_UNITS, 5, None, [], {}], "experiment": BAD_TEXT, "user": BAD_TEXT,
       "session_id": BAD_TEXT, "limit": BAD_LIMIT}


def test_hostile_values_in_every_argument_are_refused_by_name() -> None:
    """Deterministic companion of the fuzz: each argument's worst values, one at a time."""
    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="labedge-session-fuzz-") as folder:
            async with Run(Path(folder)) as hub:
                for cmd, param in (("session.start", "unit"), ("session.start", "experiment"),
                                   ("session.start", "user"), ("session.stop", "unit"),
                                   ("session.stop", "session_id"), ("session.stop", "user"),
                                   ("session.list", "unit"), ("session.list", "limit"),
                                   ("session.show", "unit"), ("session.show", "session_id")):
                    for value in BAD[param]:
                        if cmd == "session.list" and param == "unit" and value is None:
                            continue  # no unit: every unit's sessions
                        args = {"unit": "u1", param: value}
                        reply = await hub.call(cmd, args)
                        assert reply["status"] == "rejected", (cmd, args, reply)
                        assert reply["error"]["kind"] == "validation", (cmd, args, reply)
                        assert reply["error"]["param"] == param, (cmd, args, reply)
                for key in ("", " ", "id", "UNIT", "unit\u0000", "x" * 5000):
                    reply = await hub.call("session.start", {"unit": "u1", key: 1})
                    assert reply["status"] == "rejected" and reply["error"]["kind"] == "validation", reply
                    assert reply["error"]["param"].strip(), reply
                assert hub.stored() == (0, 0)

    asyncio.run(run())


def test_a_refused_start_through_the_service_is_a_command_rejection() -> None:
    """The dashboard's path: the same checks without MQTT."""
    async def run() -> None:
        with tempfile.TemporaryDirectory() as folder:
            async with Run(Path(folder)) as hub:
                assert hub.service is not None
                for bad in BAD_UNITS:
                    try:
                        await hub.service.start(bad, source=SessionSource.API)
                    except CommandRejected as exc:
                        assert exc.param == "unit"
                    else:
                        raise AssertionError(f"{bad!r} accepted")

    asyncio.run(run())
