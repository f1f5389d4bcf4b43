"""The controller's Plant over MQTT: the leases of the script's units, and commands checked before sending.

For each unit the script names, a keeper task holds the unit's lease (holder
= the hub id): acquired once the unit says `ready`, renewed every third of
its ttl, acquired again when the unit comes back (a new boot id, or `ready`
after `lost`). A unit that goes away is reported through `on_presence`
(the app raises an alarm and tells the engine), and again when the lease is
back. A command is checked against the unit's current `$birth` with
`lecis.command_check` exactly as the unit will, and only then sent; no final
reply within the timeout is `Outcome(status="timeout")`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.controller.effects import Outcome
from hub.unit_client import Publisher, ReplyTimeout, UnitClient
from lecis.clock import Clock, SystemClock
from lecis.command_check import check_against_birth
from lecis.errors import CommandRejected, ErrorKind
from lecis.topics import Topics
from lecis.wire import Birth, UnitState, UnitStateName

log = logging.getLogger("labedge.hub.plant")

Presence = Callable[[str, bool, str], None]  # unit, online (lease held), why
RETRY_S = 2.0  # between acquire attempts while a unit is up but the lease is not ours


@dataclass
class UnitLink:
    """What the plant knows of one unit."""

    client: UnitClient
    state: UnitStateName | None = None
    boot: str | None = None
    birth: Birth | None = None
    online: bool = False  # ready, and the lease is ours
    wake: asyncio.Event | None = None
    denied_by: str | None = None  # the other holder, while the unit refuses us


def _error(kind: ErrorKind, message: str) -> dict[str, Any]:
    return {"kind": kind.value, "param": None, "message": message}


class MqttPlant:
    """`Plant` for `hub.controller`; `async with` runs the lease keepers."""

    def __init__(self, client: Publisher, hub_id: str, units: Iterable[str], *, topics: Topics | None = None,
                 clock: Clock | None = None, lease_ttl_s: float = 30.0, timeout_s: float = 10.0,
                 offline_wait_s: float = 300.0, on_presence: Presence | None = None,
                 connected: asyncio.Event | None = None) -> None:
        self.topics = topics or Topics()
        self.hub_id = hub_id
        self.clock = clock or SystemClock()
        self.lease_ttl_s = lease_ttl_s
        self.timeout_s = timeout_s
        self.offline_wait_s = offline_wait_s
        self.connected = connected  # the session's: set while the broker is there
        self.on_presence = on_presence or (lambda unit, online, why: None)
        self.units = {unit: UnitLink(UnitClient(client, unit, self.topics, holder=hub_id)) for unit in units}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # ---- what the link tells us ---------------------------------------------------------------
    def feed_reply(self, topic: str, payload: bytes) -> None:
        parts = self.topics.split(topic)
        link = self.units.get(parts[0]) if parts else None
        if link is not None:
            link.client.feed(topic, payload)

    def on_birth(self, unit: str, birth: Birth) -> None:
        link = self.units.get(unit)
        if link is not None:
            link.birth = birth

    def on_unit_state(self, unit: str, state: UnitState) -> None:
        link = self.units.get(unit)
        if link is None:
            return
        restarted = link.boot is not None and state.boot != link.boot
        link.state, link.boot = state.state, state.boot
        if state.state is UnitStateName.READY:
            if restarted or link.client.token is None:
                link.client.token = None  # a new process holds no lease of ours
                self._set_online(unit, link, False, "the unit restarted (new boot id)" if restarted else "")
            self._wake(link)
        elif state.state in (UnitStateName.LOST, UnitStateName.DISCONNECTED):
            link.client.token = None
            self._set_online(unit, link, False, f"the unit is {state.state.value}")
        elif restarted:  # init of a new process
            link.client.token = None
            self._set_online(unit, link, False, "the unit restarted (new boot id)")

    def _set_online(self, unit: str, link: UnitLink, online: bool, why: str) -> None:
        if link.online == online:
            return
        link.online = online
        try:
            self.on_presence(unit, online, why)
        except Exception:  # the engine's reaction must not stop the keeper
            log.exception("presence listener failed for %s", unit)

    def _wake(self, link: UnitLink) -> None:
        if link.wake is not None:
            link.wake.set()

    def births(self) -> dict[str, Birth]:
        return {unit: link.birth for unit, link in self.units.items() if link.birth is not None}

    def status(self) -> dict[str, Any]:
        return {unit: {"online": link.online, "state": None if link.state is None else link.state.value,
                       "lease": link.client.token is not None, "denied_by": link.denied_by}
                for unit, link in self.units.items()}

    # ---- the Plant ----------------------------------------------------------------------------
    async def command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Any],
                      command_id: str | None = None) -> Outcome:
        """Check against `$birth`, send with the lease, await the final reply."""
        link = self.units.get(unit)
        if link is None:
            return Outcome("rejected", _error(ErrorKind.UNKNOWN_COMMAND,
                                              f"unit {unit} is not one the script names"))
        if module is not None:
            if link.birth is None:
                return Outcome("rejected", _error(ErrorKind.STATE, f"unit {unit} has not been seen yet "
                                                                   "(no $birth); the command was not sent"))
            try:
                checked = check_against_birth(link.birth, module, cmd, dict(args))
            except CommandRejected as exc:
                return Outcome("rejected", exc.to_error())
            args = checked.args
        return await self._send(unit, link, module, cmd, dict(args), command_id or str(uuid.uuid4()))

    async def _send(self, unit: str, link: UnitLink, module: str | None, cmd: str, args: dict[str, Any],
                    command_id: str) -> Outcome:
        """Send until a final reply, across a unit or broker outage of up to `offline_wait_s`.

        Re-sending the same id is safe: a unit that already had the command answers it from its
        duplicate detection. After a `denied` (the lease ended under us) the lease is taken again
        and the command goes out under a new id, since the unit remembers the refusal by id.
        """
        deadline = self.clock.monotonic() + self.offline_wait_s
        sent, attempt, wire_id = False, 0, command_id
        while not self._closing:
            if not await self._online_by(link, deadline):
                why = f"unit {unit} was {self._why_not(link)} for {self.offline_wait_s:g} s"
                if sent:
                    return Outcome("timeout", _error(ErrorKind.EXECUTION, f"{why}; no final reply to {cmd}"))
                return Outcome("rejected", _error(ErrorKind.STATE, f"{why}; {cmd} was not sent"))
            sent = True
            try:
                reply = await link.client.call(module, cmd, args, timeout=self.timeout_s, command_id=wire_id)
                link.client.replies.pop(wire_id, None)  # the client logs every reply; a hub runs for months
            except ReplyTimeout:
                if link.online and self.session_up():
                    why = f"no final reply from {unit} to {cmd} within {self.timeout_s:g} s"
                    return Outcome("timeout", _error(ErrorKind.EXECUTION, why))
                continue  # the unit or the broker went away meanwhile: send again once it is back
            except ConnectionError:  # SessionOffline, ConnectionClosed: the broker is away
                await self.clock.sleep(0.1)
                continue
            error = reply.get("error") if isinstance(reply.get("error"), dict) else None
            result = reply.get("result") if isinstance(reply.get("result"), dict) else None
            status = reply.get("status")
            if status == "rejected" and error and error.get("kind") == ErrorKind.DENIED.value and attempt < 3:
                attempt += 1
                wire_id = f"{command_id}-r{attempt}"
                link.client.token = None  # the unit ended our lease: take it again
                self._set_online(unit, link, False, "the unit refused the hub's lease token")
                self._wake(link)
                continue
            if status == "done":
                return Outcome("done", error, result)
            return Outcome("rejected" if status == "rejected" else "failed", error, result)
        return Outcome("timeout", _error(ErrorKind.EXECUTION, f"the hub stopped before {unit} answered"))

    def session_up(self) -> bool:
        return self.connected is None or self.connected.is_set()

    async def _online_by(self, link: UnitLink, deadline: float) -> bool:
        """True once the unit is ready and leased (and the broker there); False at `deadline`."""
        if not (link.online and link.client.token is not None and self.session_up()):
            self._wake(link)  # only then: a woken keeper holding the lease renews it (a message each)
        while not (link.online and link.client.token is not None and self.session_up()):
            if self.clock.monotonic() >= deadline or self._closing:
                return False
            await self.clock.sleep(0.05)
        return True

    def _why_not(self, link: UnitLink) -> str:
        if link.denied_by:
            return f"controlled by another: {link.denied_by}"
        return "not seen yet" if link.state is None else link.state.value

    # ---- leases -------------------------------------------------------------------------------
    async def _acquire(self, unit: str, link: UnitLink) -> bool:
        try:
            reply = await link.client.acquire(ttl_s=self._ttl(link))
        except (ReplyTimeout, ConnectionError):
            return False
        if reply.get("status") == "done":
            if link.denied_by is not None:
                log.info("lease of %s acquired after being refused", unit)
            link.denied_by = None
            self._set_online(unit, link, True, "lease acquired")
            return True
        message = str((reply.get("error") or {}).get("message"))
        if link.denied_by != message:
            log.warning("%s refused the hub's lease: %s", unit, message)
        link.denied_by = message
        return False

    def _ttl(self, link: UnitLink) -> float:
        limit = (link.birth.extra.get("lease") or {}).get("max_ttl_s") if link.birth else None
        if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0:
            return min(self.lease_ttl_s, float(limit))
        return self.lease_ttl_s

    async def _keep(self, unit: str, link: UnitLink) -> None:
        """Hold the unit's lease for as long as the plant runs."""
        link.wake = asyncio.Event()
        # The flag as well as the cancel: in 3.11 a wait_for deep in a call can swallow a cancel
        # that races its answer, and the keeper must still end.
        while not self._closing:
            wait = RETRY_S
            if link.state is UnitStateName.READY:
                if link.client.token is None:
                    await self._acquire(unit, link)
                else:
                    await self._renew(unit, link)
                if link.client.token is not None:
                    wait = self._ttl(link) / 3
            link.wake.clear()
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancel that races the wake.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await link.wake.wait()

    async def _renew(self, unit: str, link: UnitLink) -> None:
        try:
            reply = await link.client.call(None, "lease.renew", {}, timeout=min(self.timeout_s, 5.0))
        except (ReplyTimeout, ConnectionError):
            return  # the unit's $state will say if it went away; try again next round
        if reply.get("status") != "done":
            log.warning("lease of %s not renewed (%s); acquiring it again", unit,
                        (reply.get("error") or {}).get("message"))
            link.client.token = None
            self._set_online(unit, link, False, "the lease ended")
            await self._acquire(unit, link)

    async def release_all(self) -> None:
        """Give every lease back (a clean stop): the units apply their loss policy now."""
        for link in self.units.values():
            if link.client.token is not None:
                with contextlib.suppress(ReplyTimeout, ConnectionError):
                    await link.client.call(None, "lease.release", {}, timeout=2.0)
                link.client.token = None

    async def __aenter__(self) -> MqttPlant:
        self._closing = False
        self._tasks = [asyncio.create_task(self._keep(unit, link), name=f"lease-{unit}")
                       for unit, link in self.units.items()]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        for link in self.units.values():
            self._wake(link)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.release_all()  # a clean stop: each unit applies its loss policy now, not at expiry
