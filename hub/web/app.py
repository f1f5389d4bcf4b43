"""The FastAPI application: routes, one error shape, security headers, the page and its assets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.web import api_auth, api_experiment, api_lab, api_sessions, ws
from hub.web.deps import WebContext
from hub.web.errors import ApiError, error_field, validation_message
from hub.web.errors import SafeJSONResponse as JSONResponse

log = logging.getLogger("labedge.hub.web")

STATIC = Path(__file__).resolve().parent / "static"
TOO_LARGE = "labedge.body_too_large"
MAX_BODY_BYTES = 1_100_000  # a 200,000-character script as JSON, and then some
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def build_app(ctx: WebContext) -> FastAPI:
    app = FastAPI(title="labedge hub", version="1", openapi_url="/api/openapi.json", docs_url=None,
                  redoc_url=None, default_response_class=JSONResponse,
                  description="The hub's HTTP API (docs/dashboard.md). Sign in with "
                  "POST /api/login; send the token as `Authorization: Bearer TOKEN`.")
    app.state.ctx = ctx
    for module in (api_auth, api_lab, api_experiment, api_sessions, ws):
        app.include_router(module.router)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        headers = {"Retry-After": f"{max(1, round(exc.retry_after))}"} if exc.retry_after else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        found = list(exc.errors())
        first = found[0] if found else {}
        body = ApiError(422, error_field(first), validation_message(first)).body()
        body["problems"] = [{"field": error_field(e), "message": validation_message(e)}
                            for e in found[:20]]
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.scope.get(TOO_LARGE):
            return JSONResponse(ApiError(413, "body", f"the request body is over {MAX_BODY_BYTES} bytes")
                                .body(), status_code=413, headers={"Connection": "close"})
        if exc.status_code == 400:  # Starlette's own: a body it cannot even decode (not UTF-8 JSON)
            why = "the request body cannot be read as JSON (not UTF-8, or nested too deep)"
            return JSONResponse(ApiError(422, "body", why).body(), status_code=422)
        message = "no such page or API route" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(ApiError(exc.status_code, None, message).body(), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:  # the boundary: logged, no trace out
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(ApiError(500, None, "the hub could not answer this; see its log").body(),
                            status_code=500)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse(ApiError(413, "body", f"the request body is over {MAX_BODY_BYTES} bytes")
                                .body(), status_code=413)
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    return app


class BodyLimit:
    """A body over `limit` bytes is refused with 413 however it is sent: a Content-Length is checked by
    `guard`, a chunked body (no length) is counted here as it arrives and never read past the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    scope[TOO_LARGE] = True  # FastAPI turns a failed body read into 400: told apart there
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            body = ApiError(413, "body", f"the request body is over {self.limit} bytes").body()
            await JSONResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)


class _TooLarge(Exception):
    pass


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with its default 422 schema replaced by the one this API really answers."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {"description": "a field is wrong (named in error.field)",
                                    "content": {"application/json": {"schema": {
                                        "$ref": "#/components/schemas/ErrorBody"}}}}
    schemas = doc.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = doc
    return doc
