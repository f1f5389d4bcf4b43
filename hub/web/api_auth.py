"""Sign in and out. A wrong password is 401 with no hint; repeated failures are slowed per client."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from hub.web.deps import COOKIE, Ctx, Viewer
from hub.web.models import LoginBody, LoginOut, Me, errors

router = APIRouter(prefix="/api", tags=["access"])


def _secure(ctx: Ctx, request: Request) -> bool:
    return ctx.cookie_secure if ctx.cookie_secure is not None else request.url.scheme == "https"


@router.post("/login", responses=errors(401, 422, 429))
async def login(ctx: Ctx, request: Request, response: Response, body: LoginBody) -> LoginOut:
    """A session: an HttpOnly SameSite=Strict cookie for the page, and `token` for scripts (Bearer)."""
    client = request.client.host if request.client else "unknown"
    who = await ctx.auth.login(client, body.username, body.password)
    response.set_cookie(COOKIE, who.token, httponly=True, samesite="strict", secure=_secure(ctx, request),
                        path="/")
    return LoginOut(user=who.user, role=who.role, csrf_token=who.csrf, token=who.token)


@router.post("/logout", status_code=204, responses=errors(401, 403))
async def logout(ctx: Ctx, who: Viewer) -> Response:
    ctx.auth.logout(who.token)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me", responses=errors(401))
async def me(who: Viewer) -> Me:
    """Who is signed in, and the CSRF token the page sends with each state-changing call."""
    return Me(user=who.user, role=who.role, csrf_token=who.csrf)
