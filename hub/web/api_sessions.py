"""Sessions: list, show, start, stop, upload progress (the hub's session log)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from hub.sessions.model import SessionRefused, SessionSource
from hub.web.deps import Ctx, Operator, Viewer, WebContext
from hub.web.errors import ApiError
from hub.web.models import UNIT, SessionStart, errors
from lecis.errors import CommandRejected, ErrorKind

router = APIRouter(prefix="/api/sessions", tags=["sessions"])
SessionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,64}$", description="a session id")]


def service(ctx: WebContext) -> Any:
    found = ctx.sessions()
    if found is None:
        raise ApiError(409, None, "this hub runs no session log")
    return found


def refused(exc: CommandRejected) -> ApiError:
    """A check of the session log failed: 422 naming the field (404 for a unit it does not know)."""
    field = exc.param or "body"
    if field == "unit" and "not known" in exc.message:
        return ApiError(404, "unit", exc.message)
    return ApiError(409 if exc.kind is ErrorKind.STATE else 422, field, exc.message)


def _get(svc: Any, session_id: str) -> Any:
    from hub.sessions.service import SessionUnknown

    try:
        return svc.get(session_id)
    except SessionUnknown:
        raise ApiError(404, "session_id", f"no session {session_id!r} in the session log") from None


def shown(svc: Any, session: Any) -> dict[str, Any]:
    return dict(session.to_json(svc.progress(session.id)))


@router.get("", responses=errors(401, 409, 422))
async def sessions(ctx: Ctx, who: Viewer, unit: Annotated[str | None, Query(pattern=UNIT)] = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Newest first; `open` has each unit's open session (with upload progress)."""
    svc = service(ctx)
    found = [shown(svc, s) for s in svc.list(unit, limit)]
    units = sorted(ctx.view.units) if unit is None else [unit]
    current = {u: shown(svc, s) for u in units if (s := svc.current(u)) is not None}
    return {"sessions": found, "open": current}


@router.get("/{session_id}", responses=errors(401, 404, 409, 422))
async def session(ctx: Ctx, who: Viewer, session_id: SessionId) -> dict[str, Any]:
    svc = service(ctx)
    found = _get(svc, session_id)
    return {**shown(svc, found), "events": svc.events(session_id)}


@router.get("/{session_id}/progress", responses=errors(401, 404, 409, 422))
async def progress(ctx: Ctx, who: Viewer, session_id: SessionId) -> dict[str, Any]:
    svc = service(ctx)
    _get(svc, session_id)
    return dict(svc.progress(session_id).to_json())


@router.post("", responses=errors(401, 403, 404, 409, 422))
async def start(ctx: Ctx, who: Operator, body: SessionStart) -> dict[str, Any]:
    """Open a session on a unit (refused while one is open there)."""
    svc = service(ctx)
    ctx.actions.known_unit(body.unit)
    try:
        started = await svc.start(body.unit, source=SessionSource.API, user=who.user,
                                  experiment=body.experiment)
    except SessionRefused as exc:
        raise ApiError(409, "unit", str(exc)) from None
    except CommandRejected as exc:  # the log's own checks (unit, experiment): a 4xx naming the field
        raise refused(exc) from None
    return shown(svc, started)


@router.post("/{session_id}/stop", responses=errors(401, 403, 404, 409, 422))
async def stop(ctx: Ctx, who: Operator, session_id: SessionId) -> dict[str, Any]:
    """End an open session; it answers once closing began (the final transfer runs on)."""
    svc = service(ctx)
    found = _get(svc, session_id)
    try:
        stopped = await svc.stop(found.unit, source=SessionSource.API, session_id=session_id, user=who.user)
    except SessionRefused as exc:
        raise ApiError(409, "session_id", str(exc)) from None
    except CommandRejected as exc:
        raise refused(exc) from None
    return shown(svc, stopped)
