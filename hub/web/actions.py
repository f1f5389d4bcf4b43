"""What the API does to the lab: manual commands through the plant, ESTOP, the experiment and its script.

Manual commands go through the controller's plant, which holds each unit's
lease and checks the command against `$birth` as the unit will; each one is
recorded in the run's commands.jsonl (origin `manual:USER`) when sent and
when answered, like the script's own. ESTOP needs no lease: it goes straight
to each unit's `$cmd`, and is recorded after it was sent (act first).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.controller.effects import CommandEffect, Outcome
from hub.hub_commands import MAX_SCRIPT_CHARS, problems_of
from hub.script.errors import ScriptError
from hub.unit_client import ReplyTimeout, UnitClient
from hub.web.errors import ApiError
from hub.web.labview import LabView
from lecis.errors import CommandRejected, ErrorKind

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("labedge.hub.web")

ESTOP_TIMEOUT_S = 5.0
VALIDATE_WAITING = 4  # script checks running or waiting; beyond, 429
STATUS_OF_KIND = {ErrorKind.VALIDATION.value: 422, ErrorKind.UNKNOWN_COMMAND.value: 422,
                  ErrorKind.STATE.value: 409, ErrorKind.DENIED.value: 409}


class LabActions:
    def __init__(self, hub: Hub, view: LabView) -> None:
        self.hub = hub
        self.view = view
        self._clients: dict[str, UnitClient] = {}
        self._validate_one = asyncio.Lock()
        self._validating = 0

    # ---- replies for the dashboard's own lease-free commands --------------------------------------
    def feed_reply(self, topic: str, payload: bytes) -> None:
        parts = self.hub.topics.split(topic)
        client = self._clients.get(parts[0]) if parts else None
        if client is not None:
            client.feed(topic, payload)

    def _client(self, unit: str) -> UnitClient:
        client = self._clients.get(unit)
        if client is None:
            client = self._clients[unit] = UnitClient(self.hub.link.session, unit, self.hub.topics,
                                                      holder=f"{self.hub.config.hub}-dashboard")
        return client

    def known_unit(self, unit: str) -> None:
        plant = self.hub.plant
        if unit not in self.view.units and (plant is None or unit not in plant.units):
            known = ", ".join(sorted(self.view.units)) or "none yet"
            raise ApiError(404, "unit", f"no unit {unit!r} is known to this hub (known: {known})")

    # ---- commands -----------------------------------------------------------------------------
    async def module_command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Any],
                             user: str) -> dict[str, Any]:
        self.known_unit(unit)
        plant = self.hub.plant
        if plant is None or unit not in plant.units:
            raise ApiError(409, "unit", f"the hub holds no lease of unit {unit}: only the units of the "
                                        "running script take commands here (ESTOP works on every unit)")
        link = plant.units[unit]
        if module is not None and link.birth is not None and module not in link.birth.modules:
            raise ApiError(404, "module", f"unit {unit} has no module {module!r} (it has: "
                                          f"{', '.join(sorted(link.birth.modules))})")
        if not link.online:
            raise ApiError(409, "unit", f"unit {unit} is {link.state.value if link.state else 'not seen'}"
                                        " or its lease is not held; the command was not sent")
        effect = CommandEffect(str(uuid.uuid4()), unit, module, cmd, dict(args), f"manual:{user}")
        self._record(effect, None)
        try:
            async with asyncio.timeout(self.hub.config.command_timeout_s + 5):
                outcome = await plant.command(unit, module, cmd, args, command_id=effect.effect_id)
        except TimeoutError:
            outcome = Outcome("timeout", {"kind": "execution", "param": None,
                                          "message": f"no final reply from {unit} in time"})
        self._record(effect, outcome)
        body = {"id": effect.effect_id, "unit": unit, "module": module, "cmd": cmd, "status": outcome.status,
                "error": dict(outcome.error) if outcome.error else None,
                "result": dict(outcome.result) if outcome.result else None}
        if outcome.status == "rejected" and outcome.error:
            kind = str(outcome.error.get("kind"))
            param = outcome.error.get("param")
            status = STATUS_OF_KIND.get(kind, 409)
            where = f"args.{param}" if param else ("cmd" if kind == ErrorKind.UNKNOWN_COMMAND.value else None)
            raise ApiError(status, where, str(outcome.error.get("message")), extra={"outcome": body})
        return body

    async def estop(self, units: list[str] | None, user: str) -> list[dict[str, Any]]:
        """ESTOP of the given units (None: every unit the hub knows), all at once."""
        targets = sorted(self.view.units) if units is None else units
        plant = self.hub.plant
        if units is None and plant is not None:
            targets = sorted(set(targets) | set(plant.units))
        for unit in targets:
            self.known_unit(unit)
        results = await asyncio.gather(*(self._estop(unit, user) for unit in targets))
        return list(results)

    async def _estop(self, unit: str, user: str) -> dict[str, Any]:
        effect = CommandEffect(str(uuid.uuid4()), unit, None, "ESTOP", {}, f"manual:{user}")
        try:
            reply = await self._client(unit).call(None, "ESTOP", {}, lease=None, timeout=ESTOP_TIMEOUT_S,
                                                  command_id=effect.effect_id)
            status = str(reply.get("status"))
            error = reply.get("error") if isinstance(reply.get("error"), dict) else None
        except ReplyTimeout:
            status, error = "timeout", {"kind": "execution", "param": None,
                                        "message": f"no reply from {unit} within {ESTOP_TIMEOUT_S:g} s"}
        except ConnectionError as exc:
            status, error = "offline", {"kind": "execution", "param": None,
                                        "message": f"the broker is not reachable: {exc}"}
        self._record(effect, None)
        outcome_status = status if status in ("done", "failed", "rejected") else "timeout"
        self._record(effect, Outcome(outcome_status, error))  # type: ignore[arg-type]
        log.warning("ESTOP of %s by %s: %s", unit, user, status)
        return {"unit": unit, "status": status, "error": error}

    async def unit_command(self, unit: str, cmd: str, user: str) -> dict[str, Any]:
        """CLEAR (or another unit-level command) of a whole unit, with the hub's lease."""
        return await self.module_command(unit, None, cmd, {}, user)

    def _record(self, effect: CommandEffect, outcome: Outcome | None) -> None:
        controller = self.hub.controller
        if controller is None or not controller.run_id:
            return
        try:
            now = self.hub.clock.now().timestamp()
            self.hub.recorder.sink(controller.run_id).effect(effect, now, outcome)
        except Exception:  # recording must never stop a command
            log.exception("recording the manual command %s failed", effect.cmd)

    # ---- the experiment -----------------------------------------------------------------------
    async def validate(self, text: str, source: str) -> list[dict[str, Any]]:
        """Every problem of `text` (line, column, message); [] when it would be accepted.

        The parse (up to ~0.4 s for a 200,000-character script) runs in a thread, one at a time, so that
        a page typing, or a viewer posting in a loop, never holds the loop the link and controller run on;
        more than VALIDATE_WAITING waiting are 429.
        """
        if len(text) > MAX_SCRIPT_CHARS:
            raise ApiError(422, "text", f"text is {len(text)} characters; a script is at most "
                                        f"{MAX_SCRIPT_CHARS}")
        if self._validating >= VALIDATE_WAITING:
            raise ApiError(429, None, "the hub is checking other scripts; try again in 1 s", retry_after=1.0)
        controller = self.hub.controller
        capabilities = ({**controller.capabilities, **controller.births} if controller is not None
                        else dict(self.hub.births))  # copied on the loop: the thread reads no hub object
        self._validating += 1
        try:
            async with self._validate_one:
                return await asyncio.to_thread(_problems, text, source, capabilities)
        finally:
            self._validating -= 1

    def experiment(self) -> Any:
        controller = self.hub.controller
        if controller is None:
            raise ApiError(409, None, "no experiment runs on this hub (hub.yaml names no script)")
        return controller

    async def apply(self, text: str, author: str, source: str) -> dict[str, Any]:
        controller = self.experiment()
        try:
            return dict(await controller.apply(text, author, source))
        except ScriptError as exc:
            problems = problems_of(exc)
            raise ApiError(422, "text", f"script rejected, {len(problems)} problem(s); the running version "
                                        "is unchanged", extra={"problems": problems}) from None
        except CommandRejected as exc:
            raise _rejected(exc) from None

    async def control(self, what: str, reason: str | None = None) -> dict[str, Any]:
        controller = self.experiment()
        try:
            if what == "pause":
                return dict(await controller.pause())
            if what == "resume":
                return dict(await controller.resume())
            return dict(await controller.stop(reason or "stopped from the dashboard"))
        except CommandRejected as exc:
            raise _rejected(exc) from None


def _problems(text: str, source: str, capabilities: dict[str, Any]) -> list[dict[str, Any]]:
    from hub.script.loader import parse_script

    try:
        parse_script(text, source, capabilities)
    except ScriptError as exc:
        return problems_of(exc)
    return []


def _rejected(exc: CommandRejected) -> ApiError:
    error = exc.to_error()
    status = STATUS_OF_KIND.get(str(error.get("kind")), 409)
    return ApiError(status, error.get("param"), str(error["message"]))
