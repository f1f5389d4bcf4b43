"""Hub commands on `lab/hub/$cmd`, answered on `lab/hub/$reply` in the shapes of unit commands.

`{"id", "cmd", "args"}` in; `accepted`/`done`/`rejected` out, with
`error: {kind, param, message}` when refused. A command id seen before is
answered again with the replies it got, and not carried out twice (the last
MAX_REMEMBERED ids, in memory: a restarted hub forgets them). Commands go to
an `Experiment` (the app's adapter around the controller), `session.*` to the
session log's handler (hub/sessions/commands.py; a refusal names the open
session and carries it in `result.open_session`); a failure inside one is
answered `failed`, never lost, and the handler goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hub.script.errors import ScriptError
from hub.sessions.model import SessionRefused
from lecis.clock import Clock, SystemClock, iso_ts
from lecis.commands import Command, ReplyStatus, reply_payload
from lecis.errors import CommandRejected, ErrorKind, LabedgeError
from lecis.wire import CommandFormatError, decode_command, to_bytes

log = logging.getLogger("labedge.hub.commands")

MAX_REMEMBERED = 1000
MAX_SCRIPT_CHARS = 200_000
# A `$cmd` payload carrying the largest script: 4 UTF-8 bytes per character at worst, JSON escapes
# of tabs/newlines (2 bytes) included, plus room for the other fields. Under lecis.wire's 1 MiB.
MAX_COMMAND_BYTES = MAX_SCRIPT_CHARS * 4 + 64 * 1024
MAX_AUTHOR_CHARS = 100
HUB_COMMANDS = ("experiment.status", "experiment.pause", "experiment.resume", "experiment.stop",
                "script.apply", "script.versions", "session.start", "session.stop", "session.list",
                "session.show")
SESSION_PREFIX = "session."  # carried out by the session log (hub/sessions/commands.py)

Publish = Callable[[bytes], Awaitable[None]]


class Experiment(Protocol):
    """What the hub's commands drive. Methods raise CommandRejected (kind state) when they cannot."""

    def status(self) -> dict[str, Any]: ...

    async def pause(self) -> dict[str, Any]: ...

    async def resume(self) -> dict[str, Any]: ...

    async def stop(self, reason: str) -> dict[str, Any]: ...

    async def apply(self, text: str, author: str, source: str) -> dict[str, Any]:
        """Validate and apply a new version; raises ScriptError (every problem) when rejected."""

    def versions(self) -> list[dict[str, Any]]: ...


def problems_of(exc: ScriptError) -> list[dict[str, Any]]:
    return [{"file": p.file, "line": p.line, "column": p.column, "message": p.message} for p in exc.problems]


class HubCommands:
    """Feed raw `$cmd` payloads to `feed()`; replies go out through `publish`."""

    def __init__(self, experiment: Experiment | None, publish: Publish, clock: Clock | None = None,
                 session_handler: Callable[[Command], Awaitable[dict[str, Any]]] | None = None,
                 counters: Callable[[], dict[str, Any]] | None = None) -> None:
        self.experiment = experiment
        # The hub's own counters (bad_messages, readings_lost), added to every state in a reply so
        # that it is the same as the retained lab/hub/experiment/state.
        self.counters = counters
        self.publish = publish
        self.clock = clock or SystemClock()
        # The session log's commands (session.*); without it they are answered unknown_command.
        self.session_handler = session_handler
        self.answered: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def feed(self, payload: bytes) -> None:
        """Start handling one command; never raises."""
        task = asyncio.get_running_loop().create_task(self._handle(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(self, command_id: str | None, status: ReplyStatus, error: dict[str, Any] | None = None,
                    result: dict[str, Any] | None = None) -> None:
        payload = reply_payload(command_id, status, iso_ts(self.clock.now()), error, result)
        if command_id is not None:
            self.answered.setdefault(command_id, []).append(payload)
            while len(self.answered) > MAX_REMEMBERED:
                self.answered.popitem(last=False)
        try:
            await self.publish(to_bytes(payload))
        except (LabedgeError, ConnectionError) as exc:
            log.warning("reply %s to %s not sent (%s)", status.value, command_id, exc)

    async def _handle(self, payload: bytes) -> None:
        try:
            command = decode_command(payload, max_bytes=MAX_COMMAND_BYTES)
        except CommandFormatError as exc:
            await self._send(exc.command_id, ReplyStatus.REJECTED, exc.to_error())
            return
        earlier = self.answered.get(command.id)
        if earlier is not None:  # answered again, not carried out again
            for reply in list(earlier):
                try:
                    await self.publish(to_bytes({**reply, "ts": iso_ts(self.clock.now())}))
                except (LabedgeError, ConnectionError):
                    break
            return
        self.answered[command.id] = []
        try:
            result = await self._run(command)
        except SessionRefused as exc:  # names the open session, and gives it whole in the result
            open_session = exc.open_session
            await self._send(command.id, ReplyStatus.REJECTED, exc.to_error(),
                             None if open_session is None else {"open_session": open_session.to_json()})
        except CommandRejected as exc:
            await self._send(command.id, ReplyStatus.REJECTED, exc.to_error())
        except ScriptError as exc:
            message = (f"script rejected, {len(exc.problems)} problem(s); the running version is "
                       f"unchanged:\n{exc}")
            await self._send(command.id, ReplyStatus.REJECTED,
                             {"kind": ErrorKind.VALIDATION.value, "param": "text", "message": message},
                             {"problems": problems_of(exc)})
        except Exception as exc:  # the boundary: answered, logged, and the handler goes on
            log.exception("hub command %s (%s) failed", command.cmd, command.id)
            await self._send(command.id, ReplyStatus.FAILED,
                             {"kind": ErrorKind.EXECUTION.value, "param": None, "message": str(exc)})
        else:
            await self._send(command.id, ReplyStatus.DONE, None, result)

    async def _run(self, command: Command) -> dict[str, Any]:
        name, args = command.cmd, command.args
        if name not in HUB_COMMANDS:
            raise CommandRejected(ErrorKind.UNKNOWN_COMMAND, f"the hub has no command {name!r} "
                                                             f"(hub commands: {', '.join(HUB_COMMANDS)})")
        if name.startswith(SESSION_PREFIX):
            if self.session_handler is None:
                raise CommandRejected(ErrorKind.UNKNOWN_COMMAND, f"{name}: this hub has no session log yet")
            return await self.session_handler(command)
        experiment = self.experiment
        if experiment is None:
            raise CommandRejected(ErrorKind.STATE, "no experiment runs on this hub "
                                                   "(hub.yaml names no script)")
        if name == "script.apply":
            text, author, source = _apply_args(args)
            await self._send(command.id, ReplyStatus.ACCEPTED)
            return await experiment.apply(text, author, source)
        _only(name, args, ("reason",) if name == "experiment.stop" else ())
        if name == "script.versions":
            return {"versions": experiment.versions()}
        if name == "experiment.status":
            state = experiment.status()
        elif name == "experiment.pause":
            state = await experiment.pause()
        elif name == "experiment.resume":
            state = await experiment.resume()
        else:
            reason = args.get("reason", "stopped by a hub command")
            if not isinstance(reason, str):
                raise CommandRejected(ErrorKind.VALIDATION, "reason must be a string", "reason")
            state = await experiment.stop(reason)
        return state if self.counters is None else {**state, **self.counters()}


def _only(name: str, args: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(args) - set(allowed))
    if extra:
        takes = f"takes only {', '.join(allowed)}" if allowed else "takes no arguments"
        raise CommandRejected(ErrorKind.VALIDATION, f"{name} {takes}, got {extra[0]!r}", extra[0])


def _apply_args(args: dict[str, Any]) -> tuple[str, str, str]:
    _only("script.apply", args, ("text", "author", "source"))
    text, author = args.get("text"), args.get("author", "unknown")
    source = args.get("source", "script.apply")
    if not isinstance(source, str) or not source or len(source) > 200:
        raise CommandRejected(ErrorKind.VALIDATION, "source must be a file name of 1 to 200 characters",
                              "source")
    if not isinstance(text, str) or not text.strip():
        raise CommandRejected(ErrorKind.VALIDATION, "text must be the whole script as a non-empty string",
                              "text")
    if len(text) > MAX_SCRIPT_CHARS:
        raise CommandRejected(ErrorKind.VALIDATION, f"text is {len(text)} characters; a script is at most "
                                                    f"{MAX_SCRIPT_CHARS}", "text")
    if not isinstance(author, str) or not author.strip() or len(author) > MAX_AUTHOR_CHARS:
        raise CommandRejected(ErrorKind.VALIDATION, f"author must be a name of 1 to {MAX_AUTHOR_CHARS} "
                                                    "characters", "author")
    return text, author, source
