"""Who is signed in: password checks, sign-in throttling per client, session tokens, roles.

A successful sign-in makes one random token, sent back both as an HttpOnly
SameSite=Strict cookie (the page) and in the body (scripts send it as
`Authorization: Bearer TOKEN`). A cookie-authenticated call that changes
anything must carry the session's CSRF token in `X-CSRF-Token`; a bearer
call need not (a browser never adds that header by itself). Tokens live in
memory only: a restarted hub asks everyone to sign in again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from hub.web.errors import ApiError
from hub.web.passwords import verify_password
from hub.web.settings import Role, User
from lecis.clock import Clock

FREE_FAILURES = 3  # wrong passwords from one client before each further try must wait
MAX_DELAY_S = 60.0
MAX_CLIENTS = 10_000  # failure records kept (oldest forgotten first)
MAX_SESSIONS = 1_000


@dataclass
class Principal:
    user: str
    role: Role
    token: str
    csrf: str
    last_seen: float
    via: str = "cookie"

    @property
    def operator(self) -> bool:
        return self.role == "operator"


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def wait_s(self, now: float) -> float:
        if self.count < FREE_FAILURES:
            return 0.0
        delay = min(2.0 ** (self.count - FREE_FAILURES), MAX_DELAY_S)
        return max(0.0, self.last + delay - now)


class Authenticator:
    def __init__(self, users: tuple[User, ...], clock: Clock, idle_s: float) -> None:
        self.users = {u.name: u for u in users}
        self.clock = clock
        self.idle_s = idle_s
        self._sessions: OrderedDict[str, Principal] = OrderedDict()
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._checking: set[str] = set()

    async def login(self, client: str, name: str, password: str) -> Principal:
        """A new session, or ApiError 401 (no hint which part was wrong) / 429 while throttled."""
        self._throttle(client)
        if client in self._checking:  # one check at a time per client: parallel tries cannot outrun the wait
            raise ApiError(429, None, "a sign-in from this address is being checked; try again in 1 s",
                           retry_after=1.0)
        self._checking.add(client)
        try:
            user = self.users.get(name)
            ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
            return self._signed_in(client, user if ok else None)
        finally:
            self._checking.discard(client)

    def login_sync(self, client: str, name: str, password: str) -> Principal:
        """`login` in the caller's thread (for tests and tools outside the loop)."""
        self._throttle(client)
        user = self.users.get(name)
        ok = verify_password(user.password_hash if user else None, password)
        return self._signed_in(client, user if ok else None)

    def _throttle(self, client: str) -> None:
        now = self.clock.monotonic()
        failures = self._failures.get(client)
        if failures is not None:
            wait = failures.wait_s(now)
            if wait > 0:
                raise ApiError(429, None, f"too many failed sign-ins from this address; try again in "
                                          f"{wait:.0f} s", retry_after=wait)

    def _signed_in(self, client: str, user: User | None) -> Principal:
        now = self.clock.monotonic()
        if user is None:
            failures = self._failures.pop(client, None) or _Failures()
            failures.count += 1
            failures.last = now
            self._failures[client] = failures
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)
            raise ApiError(401, None, "wrong user name or password")
        self._failures.pop(client, None)
        principal = Principal(user.name, user.role, secrets.token_urlsafe(32), secrets.token_urlsafe(24), now)
        self._sessions[principal.token] = principal
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return principal

    def session(self, token: str | None) -> Principal | None:
        """The signed-in principal of `token`, or None (unknown, expired, or the user was removed)."""
        if not token:
            return None
        principal = self._sessions.get(token)
        now = self.clock.monotonic()
        if principal is None:
            return None
        if now - principal.last_seen > self.idle_s or principal.user not in self.users:
            self._sessions.pop(token, None)
            return None
        principal.last_seen = now
        self._sessions.move_to_end(token)
        return principal

    def logout(self, token: str) -> None:
        self._sessions.pop(token, None)
