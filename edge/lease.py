"""Exclusive control of a unit: one controller at a time, granted by the unit itself.

The unit is the authority (docs/contract.md "Commands: validated, leased, answered
once"): competing controllers never race on retained messages, they ask here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from edge.waiting import sleep_or_event
from lecis.clock import Clock
from lecis.commands import is_finite_number
from lecis.errors import CommandInvalid, LeaseDenied

MAX_HOLDER_LENGTH = 64
log = logging.getLogger("labedge.lease")


@dataclass
class Lease:
    holder: str
    token: str
    ttl_s: float
    expires_at: float  # on the clock's monotonic scale


LeaseEnd = Literal["expired", "released"]


class LeaseManager:
    """Grants, checks, extends and ends the unit's control lease.

    `on_lost(holder, how)` is called once for every lease that ends without a
    successor from the same holder: `how` is "expired" or "released". Expiry is
    decided at the moment of each check (acquire, verify, renew, describe), so
    the callback (the loss policy) has run before anyone else is granted a
    token; `watch()` is the timer that reaps a lease nobody asks about.
    """

    def __init__(self, clock: Clock, max_ttl_s: float, on_lost: Callable[[str, LeaseEnd], None]) -> None:
        self.clock = clock
        self.max_ttl_s = max_ttl_s
        self.on_lost = on_lost
        self.current: Lease | None = None
        self.changed: Callable[[], None] = lambda: None
        self._rearm = asyncio.Event()  # the timer's deadline moved

    def _end(self, lease: Lease, how: LeaseEnd) -> None:
        # Cleared before the callback, so anything it asks about the lease sees it gone.
        self.current = None
        self._rearm.set()
        for step in (self.changed, lambda: self.on_lost(lease.holder, how)):
            try:
                step()
            except Exception:  # the policy must run and the lease must end, whatever a listener does
                log.exception("lease of %r %s: a listener failed", lease.holder, how)

    def _live(self) -> Lease | None:
        lease = self.current
        if lease is not None and self.clock.monotonic() >= lease.expires_at:
            self._end(lease, "expired")
            return None
        return lease

    def acquire(self, args: dict[str, Any]) -> dict[str, Any]:
        holder = args.get("holder")
        if (not isinstance(holder, str) or not holder.strip() or len(holder) > MAX_HOLDER_LENGTH
                or not holder.isprintable()):
            raise CommandInvalid(
                f"holder must be a non-empty name of at most {MAX_HOLDER_LENGTH} printable characters",
                "holder",
            )
        ttl = args.get("ttl_s")
        if not is_finite_number(ttl) or not 0 < float(ttl) <= self.max_ttl_s:  # type: ignore[arg-type]
            raise CommandInvalid(f"ttl_s must be a number above 0 and at most {self.max_ttl_s:g}", "ttl_s")
        unknown = set(args) - {"holder", "ttl_s"}
        if unknown:
            name = sorted(unknown)[0]
            raise CommandInvalid(f"lease.acquire takes holder and ttl_s, not {name!r}", name)
        live = self._live()
        if live is not None and live.holder != holder:
            remaining = live.expires_at - self.clock.monotonic()
            raise LeaseDenied(
                f"unit is controlled by {live.holder!r} for another {remaining:.1f} s; "
                "wait for it to release or expire"
            )
        # The same holder asking again (say, after a restart that lost its token) gets a fresh lease.
        ttl_s = float(ttl)  # type: ignore[arg-type]
        self.current = Lease(holder, secrets.token_urlsafe(18), ttl_s, self.clock.monotonic() + ttl_s)
        self._rearm.set()
        self.changed()
        return self.describe(include_token=True)

    def verify(self, token: str | None) -> Lease:
        """The live lease `token` belongs to; raises LeaseDenied otherwise."""
        live = self._live()
        if token is None:
            if live is None:
                raise LeaseDenied("this command needs a lease: send lease.acquire to $cmd first")
            raise LeaseDenied(
                f"this command needs the lease token; the unit is controlled by {live.holder!r}"
            )
        if live is None or not _same_token(token, live.token):
            if live is None:
                raise LeaseDenied("lease token is not valid (expired or released); acquire a new lease")
            raise LeaseDenied(f"lease token is not valid; the unit is controlled by {live.holder!r}")
        return live

    def extend(self, lease: Lease) -> None:
        lease.expires_at = self.clock.monotonic() + lease.ttl_s

    def renew(self, token: str | None) -> dict[str, Any]:
        lease = self.verify(token)
        self.extend(lease)
        return self.describe(include_token=False)

    def release(self, token: str | None) -> dict[str, Any]:
        lease = self.verify(token)
        self._end(lease, "released")  # nobody holds the unit now: the loss policy applies
        return {"released": True, "holder": lease.holder}

    def holder(self) -> str | None:
        live = self._live()
        return live.holder if live else None

    def describe(self, include_token: bool = False) -> dict[str, Any]:
        live = self._live()
        if live is None:
            return {"holder": None}
        out: dict[str, Any] = {
            "holder": live.holder,
            "expires_in_s": round(max(0.0, live.expires_at - self.clock.monotonic()), 3),
        }
        if include_token:
            out["token"] = live.token
        return out

    async def watch(self) -> None:
        """Run forever: end each lease at its expiry on the clock, even if nobody asks."""
        while True:
            live = self._live()
            remaining = None if live is None else max(0.0, live.expires_at - self.clock.monotonic())
            await sleep_or_event(self.clock, self._rearm, remaining)


def _same_token(given: str, token: str) -> bool:
    # Bytes: compare_digest refuses str with non-ASCII characters, and a token from the wire may have them.
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8"))
