"""Births, payloads and a settable clock for the recorder's tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from lecis.clock import iso_ts
from lecis.dcd import ReadingSpec
from lecis.wire import Birth, BirthModule

T0 = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


class SetClock:
    """Wall time the test sets; sleeping is real (the recorder's writer only stamps with it)."""

    def __init__(self, start: datetime = T0) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def birth(unit: str = "bench-1") -> Birth:
    return Birth(unit, "0.1.0", "boot-1", iso_ts(T0), {
        "ph1": BirthModule("instrument", "ezo", (ReadingSpec("ph", "pH", 0.001, 14.0),)),
        "rtd1": BirthModule("instrument", "ezo", (ReadingSpec("temp", "°C", -126.0, 1254.0),)),
        "do1": BirthModule("instrument", "ezo", (ReadingSpec("do_mg", "mg/L", 0.0, 100.0),
                                                 ReadingSpec("do_sat", "%", 0.0, 400.0))),
    })


def ts(seconds: float) -> str:
    return iso_ts(T0 + timedelta(seconds=seconds))


def data(seq: int, values: dict[str, Any], at: float | None = None, hist: bool = False) -> dict[str, Any]:
    return {"seq": seq, "hist": hist, "readings": [{"ts": ts(seq if at is None else at), "values": values}]}


def event(seq: int, code: str = "bad_data", level: str = "warning",
          message: str = "garbage") -> dict[str, Any]:
    return {"seq": seq, "hist": False, "ts": ts(seq), "level": level, "code": code, "message": message}
