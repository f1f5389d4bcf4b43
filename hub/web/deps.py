"""FastAPI dependencies: the web context, who is signed in, CSRF on state-changing calls, roles.

Every dependency and every route that reads the hub's objects is `async`: it runs on the hub's own
loop, never in FastAPI's thread pool beside the link that changes those objects.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from hub.web.auth import Authenticator, Principal
from hub.web.errors import ApiError
from hub.web.processes import Processes

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.web.actions import LabActions
    from hub.web.labview import LabView
    from hub.web.live import LiveBridge

log = logging.getLogger("labedge.hub.web")
COOKIE = "labedge_session"
CSRF_HEADER = "X-CSRF-Token"

_bearer = HTTPBearer(auto_error=False, description="the `token` of POST /api/login")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False,
                       description=f"set by POST /api/login; state-changing calls also need {CSRF_HEADER}")


@dataclass
class WebContext:
    hub: Hub
    auth: Authenticator
    view: LabView
    bridge: LiveBridge
    actions: LabActions
    cookie_secure: bool | None
    processes: Processes

    def sessions(self) -> Any:
        """The hub's session log (hub.sessions.service.SessionService), or None on a hub without one."""
        return self.hub.sessions

    async def fill_last_readings(self) -> set[str]:
        """Modules with no reading since the hub started get the recorder's newest one (once each), so a
        restarted hub's cards show their last values before new data arrives."""
        wanted = self.view.unfilled()
        if not wanted:
            return set()
        self.view.looked_up.update(wanted)
        recorder = self.hub.recorder

        def read() -> list[tuple[str, str, Any]]:
            out = []
            for unit, module in wanted:
                try:
                    out.append((unit, module, recorder.latest(unit, module)))
                except Exception:
                    log.exception("the recorder's last reading of %s/%s could not be read", unit, module)
            return out

        return {unit for unit, module, latest in await asyncio.to_thread(read)
                if self.view.fill_latest(unit, module, latest)}


async def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


Ctx = Annotated[WebContext, Depends(context)]


def principal_of(ctx: WebContext, bearer: str | None, cookie: str | None) -> Principal | None:
    if bearer:
        found = ctx.auth.session(bearer)
        if found is not None:
            found.via = "bearer"
        return found
    found = ctx.auth.session(cookie)
    if found is not None:
        found.via = "cookie"
    return found


async def signed_in(ctx: Ctx, request: Request,
              bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
              cookie: Annotated[str | None, Depends(_cookie)]) -> Principal:
    found = principal_of(ctx, bearer.credentials if bearer else None, cookie)
    if found is None:
        raise ApiError(401, None, "sign in first (POST /api/login), or send Authorization: Bearer TOKEN")
    if request.method not in ("GET", "HEAD", "OPTIONS") and found.via == "cookie":
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), found.csrf.encode()):
            raise ApiError(403, CSRF_HEADER, f"a state-changing call needs the {CSRF_HEADER} header of this "
                                             "session (GET /api/me gives it)")
    return found


Viewer = Annotated[Principal, Depends(signed_in)]


async def operator(who: Viewer) -> Principal:
    if not who.operator:
        raise ApiError(403, None, f"user {who.user} is a viewer; this needs an operator")
    return who


Operator = Annotated[Principal, Depends(operator)]
