"""`session.start|stop|list|show` on `lab/hub/$cmd`: arguments checked, then the SessionService.

Every argument is checked for its type, size and characters before anything
is stored; an unknown unit (never heard of by this hub: no `$birth`, not in
the script, `watch:` or the log) is refused, so a typo never opens a session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.sessions.checks import MAX_EXPERIMENT_CHARS, MAX_USER_CHARS, check_text, check_unit, invalid
from hub.sessions.model import SessionSource
from hub.sessions.service import SessionService, SessionUnknown
from lecis.commands import Command
from lecis.errors import CommandRejected, ErrorKind

SESSION_COMMANDS = ("session.start", "session.stop", "session.list", "session.show")
MAX_LIST = 200  # a reply of 200 sessions with the longest names stays far under the 1 MiB of a payload
MESSAGE_SHOWN = 500  # characters of an event's message in session.show (file paths can be long)
EVENTS_SHOWN = 50
SOURCES = {s.value: s for s in (SessionSource.CLI, SessionSource.API)}

_ALLOWED = {"session.start": ("unit", "experiment", "user", "source"),
            "session.stop": ("unit", "session_id", "user", "source"),
            "session.list": ("unit", "limit"),
            "session.show": ("unit", "session_id")}


class SessionCommands:
    """`await SessionCommands(service, known_units)(command)` -> the `done` result; CommandRejected else."""

    def __init__(self, service: SessionService, known_units: Callable[[], set[str]]) -> None:
        self.service = service
        self.known_units = known_units

    def _known(self) -> set[str]:
        return set(self.known_units()) | self.service.units()

    async def __call__(self, command: Command) -> dict[str, Any]:
        name, args = command.cmd, command.args
        if name not in _ALLOWED:
            listed = ", ".join(SESSION_COMMANDS)
            raise CommandRejected(ErrorKind.UNKNOWN_COMMAND,
                                  f"the hub has no command {name!r} (session commands: {listed})")
        extra = sorted(set(args) - set(_ALLOWED[name]))
        if extra:
            first = extra[0][:40]
            # `param` names the argument; one named "" (or only spaces) is named by where it is: args
            raise invalid(f"{name} takes only {', '.join(_ALLOWED[name])}, got {first!r}",
                          first if first.strip() else "args")
        service = self.service
        if name == "session.list":
            unit = None if args.get("unit") is None else check_unit(args["unit"], self._known())
            limit = args.get("limit", 100)
            if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST:
                raise invalid(f"limit must be a whole number from 1 to {MAX_LIST}", "limit")
            return {"sessions": [s.to_json(service.progress(s.id)) for s in service.list(unit, limit)]}
        if name == "session.show":
            return self._show(args)
        unit = check_unit(args.get("unit"), self._known())
        user = check_text(args.get("user"), "user", MAX_USER_CHARS)
        source = _source(args.get("source", "cli"))
        if name == "session.start":
            experiment = check_text(args.get("experiment"), "experiment", MAX_EXPERIMENT_CHARS)
            session = await service.start(unit, source=source, user=user, experiment=experiment)
        else:
            session_id = check_text(args.get("session_id"), "session_id", 64)
            session = await service.stop(unit, source=source, session_id=session_id, user=user)
        return {"session": session.to_json(service.progress(session.id))}

    def _show(self, args: dict[str, Any]) -> dict[str, Any]:
        service = self.service
        session_id = check_text(args.get("session_id"), "session_id", 64)
        if session_id is not None:
            try:
                session = service.get(session_id)
            except SessionUnknown as exc:
                raise invalid(str(exc), "session_id") from None
        else:
            if args.get("unit") is None:
                raise invalid("session.show needs unit or session_id", "unit")
            unit = check_unit(args["unit"], self._known())
            latest = service.latest(unit)
            if latest is None:
                return {"session": None, "events": [], "files": 0}
            session = latest
        events = [_shown(e) for e in service.events(session.id)[-EVENTS_SHOWN:]]
        return {"session": session.to_json(service.progress(session.id)), "events": events,
                "files": len(service.files(session.id))}


def _shown(event: dict[str, Any]) -> dict[str, Any]:
    """An event as session.show gives it: kind, ts and message (cut), not its data (the log has it all)."""
    message = str(event.get("message", ""))
    if len(message) > MESSAGE_SHOWN:
        message = message[:MESSAGE_SHOWN] + " ..."
    return {"kind": event.get("kind"), "ts": event.get("ts"), "message": message}


def _source(value: Any) -> SessionSource:
    if not isinstance(value, str) or value not in SOURCES:
        raise invalid(f"source must be one of {', '.join(SOURCES)}", "source")
    return SOURCES[value]
