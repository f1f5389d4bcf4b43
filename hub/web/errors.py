"""The API's errors: one JSON shape, a 4xx naming the field, never a stack trace.

`{"error": {"status": 422, "field": "args.ml", "message": "..."}}`, plus
`problems` (line, column, message) for a script that does not validate.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import JSONResponse

from lecis.errors import LabedgeError

log = logging.getLogger("labedge.hub.web")


class ApiError(LabedgeError):
    """An answer other than success: HTTP `status`, the request `field` at fault, what to do."""

    def __init__(self, status: int, field: str | None, message: str, *, retry_after: float | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message
        self.retry_after = retry_after
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "field": self.field, "message": self.message},
                **self.extra}


class SafeJSONResponse(JSONResponse):
    """JSON that can always be sent: a lone surrogate a client sent (echoed in an error naming its field)
    is escaped as \\udXXX instead of failing the UTF-8 encoding with a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "args", "ml")` -> `args.ml`; `("query", "limit")` -> `limit`."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "body"


def error_field(error: dict[str, Any]) -> str:
    """The field a pydantic error is about (`body` for JSON that does not parse at all)."""
    if error.get("type") == "json_invalid":
        return "body"
    return field_of(error.get("loc", ()))


def validation_message(error: dict[str, Any]) -> str:
    where = error_field(error)
    kind = str(error.get("type", ""))
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error")
        return "the request body is not valid JSON" + (f" ({detail})" if detail else "")
    if kind == "missing":
        return f"{where} is missing"
    if kind == "extra_forbidden":
        return f"{where} is not a field of this request"
    return f"{where}: {error.get('msg', 'invalid')}"
