"""Units and modules, manual commands, ESTOP, events and a reading's history."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from hub.web.deps import Ctx, Operator, Viewer
from hub.web.errors import ApiError
from hub.web.models import MODULE, UNIT, CommandBody, errors

router = APIRouter(prefix="/api", tags=["lab"])
UnitPath = Annotated[str, Path(pattern=UNIT, description="a unit id")]
ModulePath = Annotated[str, Path(pattern=MODULE, description="a module id")]
LEVELS = ("alarm", "warning", "info")
EPOCH = {"ge": 0, "le": 1e11, "allow_inf_nan": False}
EVENTS_CAP = 20_000
RECENT_WINDOWS_S = (600, 3600, 6 * 3600, 86400, 7 * 86400, 365 * 86400)


@router.get("/units", responses=errors(401))
async def units(ctx: Ctx, who: Viewer) -> list[dict[str, Any]]:
    """Every unit the hub has heard of: presence and since when, modules with state, outputs,
    last readings and capabilities (readings with units and ranges, commands) from `$birth`."""
    await ctx.fill_last_readings()
    lease = ctx.hub.plant.status() if ctx.hub.plant is not None else {}
    return [{**u, "lease": bool(lease.get(u["unit"], {}).get("lease"))} for u in ctx.view.snapshot()]


@router.get("/units/{unit}", responses=errors(401, 404, 422))
async def unit(ctx: Ctx, who: Viewer, unit: UnitPath) -> dict[str, Any]:
    await ctx.fill_last_readings()
    view = ctx.view.units.get(unit)
    if view is None:
        ctx.actions.known_unit(unit)
        return {"unit": unit, "presence": "unknown", "online": False, "since": None, "modules": []}
    return view.to_json()


@router.post("/units/{unit}/modules/{module}/command", responses=errors(401, 403, 404, 409, 422))
async def command(ctx: Ctx, who: Operator, unit: UnitPath, module: ModulePath,
                  body: CommandBody) -> dict[str, Any]:
    """A manual command, sent with the hub's lease and recorded in the run's commands.jsonl."""
    return await ctx.actions.module_command(unit, module, body.cmd, body.args, who.user)


@router.post("/units/{unit}/clear", responses=errors(401, 403, 404, 409, 422))
async def clear(ctx: Ctx, who: Operator, unit: UnitPath) -> dict[str, Any]:
    """CLEAR every module of the unit (after an ESTOP); nothing that ran before restarts by itself."""
    return await ctx.actions.unit_command(unit, "CLEAR", who.user)


@router.post("/units/{unit}/estop", responses=errors(401, 403, 404, 422))
async def estop_unit(ctx: Ctx, who: Viewer, unit: UnitPath) -> dict[str, Any]:
    """ESTOP of one unit: every signed-in user may."""
    return (await ctx.actions.estop([unit], who.user))[0]


@router.post("/estop", responses=errors(401, 403))
async def estop_all(ctx: Ctx, who: Viewer) -> dict[str, Any]:
    """ESTOP of every unit the hub knows, at once: every signed-in user may."""
    return {"units": await ctx.actions.estop(None, who.user)}


@router.get("/processes", responses=errors(401))
async def processes(ctx: Ctx, who: Viewer) -> dict[str, Any]:
    """The processes of the supervisord the hub runs under (state, pid, uptime), read over its XML-RPC;
    `supervisor` null and a `message` when the hub was not started by one."""
    return await ctx.processes.status()


@router.get("/events", responses=errors(401, 422))
async def events(ctx: Ctx, who: Viewer,
                 unit: Annotated[str | None, Query(pattern=UNIT)] = None,
                 module: Annotated[str | None, Query(max_length=64)] = None,
                 level: Annotated[str | None, Query(pattern="^(alarm|warning|info)$")] = None,
                 code: Annotated[str | None, Query(max_length=100)] = None,
                 source: Annotated[str | None, Query(pattern="^(unit|recorder|controller)$")] = None,
                 since: Annotated[float | None, Query(**EPOCH, description="epoch seconds")] = None,
                 until: Annotated[float | None, Query(**EPOCH, description="epoch seconds")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """The most recent events, alarms first, then warnings, then info (newest first in each)."""
    if since is not None and until is not None and until <= since:
        raise ApiError(422, "until", f"until ({until}) must be after since ({since})")
    filters = {"unit": unit, "module": module, "level": level, "code": code, "source": source,
               "end": until}
    found = await asyncio.to_thread(_recent, ctx.hub.recorder, filters, since,
                                    ctx.hub.clock.now().timestamp(), limit)
    recent = found[-limit:]
    recent.sort(key=lambda e: (LEVELS.index(e["level"]) if e["level"] in LEVELS else 3, -float(e["ts"])))
    return {"events": recent, "total": len(found)}  # total: in the window read (at most EVENTS_CAP)


def _recent(recorder: Any, filters: dict[str, Any], since: float | None, now: float,
            limit: int) -> list[dict[str, Any]]:
    """The newest `limit` events: the recorder reads oldest first, so the window widens until enough."""
    if since is not None:
        return list(recorder.events(**filters, start=since, limit=EVENTS_CAP))[-limit:]
    found: list[dict[str, Any]] = []
    for window in RECENT_WINDOWS_S:
        wider = list(recorder.events(**filters, start=now - window, limit=EVENTS_CAP))
        if len(wider) >= EVENTS_CAP and found:
            return found  # the wider window was cut off at its oldest end: keep the complete newer one
        found = wider
        if len(found) >= limit:
            break
    return found


@router.get("/history", responses=errors(401, 422))
async def history(ctx: Ctx, who: Viewer, unit: Annotated[str, Query(pattern=UNIT)],
                  module: Annotated[str, Query(pattern=MODULE)],
                  reading: Annotated[str, Query(min_length=1, max_length=64)],
                  start: Annotated[float, Query(**EPOCH, description="epoch seconds")],
                  end: Annotated[float, Query(**EPOCH, description="epoch seconds")],
                  points: Annotated[int, Query(ge=1, le=5000)] = 600) -> dict[str, Any]:
    """A reading over [start, end) downsampled into `points` buckets: [ts, min, max, mean, count]."""
    if not end > start:
        raise ApiError(422, "end", f"end ({end}) must be after start ({start})")
    buckets = await asyncio.to_thread(ctx.hub.recorder.history, unit, module, reading, start, end, points)
    return {"unit": unit, "module": module, "reading": reading, "start": start, "end": end,
            "width": (end - start) / points,
            "buckets": [[b.ts, b.min, b.max, b.mean, b.count] for b in buckets]}
