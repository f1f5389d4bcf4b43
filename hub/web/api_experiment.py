"""The experiment: state, the running script, validate, replace, versions with diffs, pause/resume/stop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from hub.web.deps import Ctx, Operator, Viewer
from hub.web.errors import ApiError
from hub.web.models import ApplyBody, ScriptText, StopBody, errors

router = APIRouter(prefix="/api/experiment", tags=["experiment"])


@router.get("", responses=errors(401))
async def state(ctx: Ctx, who: Viewer) -> dict[str, Any]:
    """The experiment's state (as on lab/hub/experiment/state): run, version, next tasks, loops, guards."""
    return {"hub": ctx.hub.config.hub, "has_script": ctx.hub.controller is not None, **ctx.hub.status()}


@router.get("/script", responses=errors(401, 409))
async def script(ctx: Ctx, who: Viewer) -> dict[str, Any]:
    """The running version's text."""
    controller = ctx.actions.experiment()
    current = controller.script
    version = controller.runner.engine.version if controller.runner is not None else 1
    return {"version": version, "text": current.text, "source": current.source,
            "experiment": current.experiment, "units": sorted(current.units)}


@router.post("/validate", responses=errors(401, 403, 422, 429))
async def validate(ctx: Ctx, who: Viewer, body: ScriptText) -> dict[str, Any]:
    """Every problem of a script text with its line and column; nothing is applied."""
    problems = await ctx.actions.validate(body.text, body.source)
    return {"ok": not problems, "problems": problems}


@router.put("/script", responses=errors(401, 403, 409, 422))
async def replace(ctx: Ctx, who: Operator, body: ApplyBody) -> dict[str, Any]:
    """Apply a new version; 422 with every problem when it does not validate (the running one stays)."""
    return await ctx.actions.apply(body.text, body.author or who.user, body.source)


@router.get("/versions", responses=errors(401, 409))
async def versions(ctx: Ctx, who: Viewer) -> dict[str, Any]:
    """Every version applied in this run: number, time, author and the unified diff from the one before."""
    return {"versions": ctx.actions.experiment().versions()}


@router.get("/versions/{version}", responses=errors(401, 404, 409, 422))
async def version(ctx: Ctx, who: Viewer, version: Annotated[int, Path(ge=1, le=1_000_000)]) -> dict[str, Any]:
    controller = ctx.actions.experiment()
    known = [v for v in controller.versions() if v.get("version") == version]
    if not known:
        raise ApiError(404, "version", f"this run has no script version {version}")
    from hub.controller.run_store import RunStateCorrupt

    try:
        text = controller.store.version_text(version)
    except RunStateCorrupt as exc:
        raise ApiError(404, "version", str(exc)) from None
    return {**known[0], "text": text}


@router.post("/pause", responses=errors(401, 403, 409))
async def pause(ctx: Ctx, who: Operator) -> dict[str, Any]:
    return await ctx.actions.control("pause")


@router.post("/resume", responses=errors(401, 403, 409))
async def resume(ctx: Ctx, who: Operator) -> dict[str, Any]:
    return await ctx.actions.control("resume")


@router.post("/stop", responses=errors(401, 403, 409, 422))
async def stop(ctx: Ctx, who: Operator, body: StopBody | None = None) -> dict[str, Any]:
    """Stop the run: every output to its safe value, the run closed."""
    return await ctx.actions.control("stop", (body.reason if body else None) or f"stopped by {who.user}")
