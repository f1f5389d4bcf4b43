"""Request and response bodies of the API (they make its OpenAPI document)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

UNIT = r"^[a-z0-9][a-z0-9-]{0,31}$"
MODULE = r"^[a-z0-9][a-z0-9_]{0,31}$"
COMMAND = r"^[A-Za-z][A-Za-z0-9_.]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    status: int
    field: str | None
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
    problems: list[dict[str, Any]] | None = None


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route documents (each one it can really give)."""
    return {code: {"model": ErrorBody} for code in codes}


class LoginBody(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    user: str
    role: str
    csrf_token: str


class LoginOut(Me):
    token: str


class CommandBody(Strict):
    cmd: str = Field(pattern=COMMAND, description="a command the module's $birth declares, or a LECIS one")
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("args")
    @classmethod
    def finite(cls, args: dict[str, Any]) -> dict[str, Any]:
        """JSON allows 1e999 (infinity); no command argument can mean it."""
        for name, value in args.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        return args


class ScriptText(Strict):
    text: str = Field(max_length=200_000)
    source: str = Field("dashboard", min_length=1, max_length=200)


class ApplyBody(ScriptText):
    text: str = Field(max_length=200_000, pattern=r"\S", description="the whole script")
    author: str | None = Field(None, min_length=1, max_length=100)


class StopBody(Strict):
    reason: str | None = Field(None, max_length=500)


class SessionStart(Strict):
    unit: str = Field(pattern=UNIT)
    experiment: str | None = Field(None, max_length=200)
