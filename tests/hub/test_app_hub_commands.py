"""Hub commands: unit command shapes, every problem of a rejected script, repeated ids answered again."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hub.hub_commands import HubCommands
from hub.script.errors import ScriptError, ScriptProblem
from lecis.errors import CommandRejected, ErrorKind
from lecis.wire import Reply


class FakeExperiment:
    def __init__(self) -> None:
        self.version = 1
        self.state = "running"
        self.applied: list[tuple[str, str]] = []

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "script_version": self.version}

    async def pause(self) -> dict[str, Any]:
        if self.state != "running":
            raise CommandRejected(ErrorKind.STATE, f"the experiment is {self.state}, not running")
        self.state = "paused"
        return self.status()

    async def resume(self) -> dict[str, Any]:
        self.state = "running"
        return self.status()

    async def stop(self, reason: str) -> dict[str, Any]:
        self.state = "stopped"
        return {**self.status(), "reason": reason}

    async def apply(self, text: str, author: str, source: str) -> dict[str, Any]:
        if "broken" in text:
            raise ScriptError([ScriptProblem(source, 3, 7, "unknown reading 'bench-1/ph1.pH'"),
                               ScriptProblem(source, 9, 12, "expected a duration")])
        self.applied.append((text, author))
        self.version += 1
        return {"version": self.version}

    def versions(self) -> list[dict[str, Any]]:
        return [{"version": v} for v in range(1, self.version + 1)]


class Harness:
    def __init__(self, experiment: FakeExperiment | None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.commands = HubCommands(experiment, self.publish)
        self.changed = asyncio.Event()

    async def publish(self, payload: bytes) -> None:
        reply = json.loads(payload)
        Reply.from_json(reply)  # every reply fits the contract's reply shape
        self.sent.append(reply)
        self.changed.set()

    async def call(self, command_id: str, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        before = len(self.sent)
        self.commands.feed(json.dumps({"id": command_id, "cmd": cmd, "args": args or {}}).encode())
        async with asyncio.timeout(5):
            while not any(r["status"] in ("done", "failed", "rejected") for r in self.sent[before:]):
                self.changed.clear()
                await self.changed.wait()
        return [r for r in self.sent[before:] if r["status"] in ("done", "failed", "rejected")][-1]


async def test_pause_resume_stop_and_status() -> None:
    h = Harness(FakeExperiment())
    assert (await h.call("c1", "experiment.pause"))["result"]["state"] == "paused"
    again = await h.call("c2", "experiment.pause")
    assert again["status"] == "rejected" and again["error"]["kind"] == "state"
    assert (await h.call("c3", "experiment.resume"))["result"]["state"] == "running"
    assert (await h.call("c4", "experiment.status"))["result"] == {"state": "running", "script_version": 1}
    stopped = await h.call("c5", "experiment.stop", {"reason": "done for today"})
    assert stopped["result"]["reason"] == "done for today"


async def test_a_broken_script_is_rejected_with_every_problem() -> None:
    experiment = FakeExperiment()
    h = Harness(experiment)
    reply = await h.call("a1", "script.apply", {"text": "broken: yes\n", "author": "ana",
                                                "source": "script.apply"})
    assert reply["status"] == "rejected"
    assert reply["error"]["kind"] == "validation" and reply["error"]["param"] == "text"
    assert "script.apply:3:7: unknown reading 'bench-1/ph1.pH'" in reply["error"]["message"]
    assert "script.apply:9:12: expected a duration" in reply["error"]["message"]
    assert [(p["line"], p["column"]) for p in reply["result"]["problems"]] == [(3, 7), (9, 12)]
    assert experiment.version == 1
    good = await h.call("a2", "script.apply", {"text": "experiment: x\n", "author": "ana"})
    assert good["status"] == "done" and good["result"] == {"version": 2}
    assert [r["status"] for r in h.sent if r["id"] == "a2"] == ["accepted", "done"]
    versions = await h.call("a3", "script.versions")
    assert versions["result"]["versions"] == [{"version": 1}, {"version": 2}]


async def test_a_repeated_id_is_answered_again_not_run_again() -> None:
    experiment = FakeExperiment()
    h = Harness(experiment)
    await h.call("r1", "script.apply", {"text": "experiment: x\n"})
    again = await h.call("r1", "script.apply", {"text": "experiment: y\n"})
    assert again["result"] == {"version": 2}
    assert experiment.applied == [("experiment: x\n", "unknown")]


async def test_unknown_bad_and_later_commands_are_rejected() -> None:
    h = Harness(FakeExperiment())
    unknown = await h.call("u1", "experiment.fly")
    assert unknown["error"]["kind"] == "unknown_command"
    session = await h.call("u2", "session.start", {"unit": "bench-1"})
    assert session["error"]["kind"] == "unknown_command"
    bad = await h.call("u3", "experiment.pause", {"now": True})
    assert (bad["error"]["kind"], bad["error"]["param"]) == ("validation", "now")
    no_text = await h.call("u4", "script.apply", {"author": "ana"})
    assert (no_text["error"]["kind"], no_text["error"]["param"]) == ("validation", "text")
    h.commands.feed(b"{not json")
    async with asyncio.timeout(5):
        while len(h.sent) < 5:
            h.changed.clear()
            await h.changed.wait()
    assert h.sent[-1]["status"] == "rejected" and h.sent[-1]["id"] is None


async def test_without_a_script_experiment_commands_say_so() -> None:
    h = Harness(None)
    reply = await h.call("n1", "experiment.status")
    assert reply["error"]["kind"] == "state" and "names no script" in reply["error"]["message"]
