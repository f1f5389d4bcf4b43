"""Who is signed in: password checks, sign-in throttling per client, session tokens, roles.

A successful sign-in makes one random token, sent back both as an HttpOnly
SameSite=Strict cookie (the page) and in the body (scripts send it as
`Authorization: Bearer TOKEN`). A cookie-authenticated call that changes
anything must carry the session's CSRF token in `X-CSRF-Token`; a bearer
call need not (a browser never adds that header by itself). Tokens live in
memory only: a restarted hub asks everyone to sign in again. The `users:` of
hub.yaml are read again whenever the file changes: a user removed there, or
whose password was changed, is signed out at their next call; a changed role
applies at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from hub.web.errors import ApiError
from hub.web.passwords import verify_password
from hub.web.settings import Role, User
from lecis.clock import Clock
from lecis.errors import LabedgeError

log = logging.getLogger("labedge.hub.web")

FREE_FAILURES = 3  # wrong passwords from one client before each further try must wait
MAX_DELAY_S = 60.0
MAX_CLIENTS = 10_000  # failure records kept (oldest forgotten first)
MAX_SESSIONS = 1_000
MAX_CHECKS = 2  # password checks at once (argon2: 64 MiB and tens of ms each), whatever the addresses
MAX_WAITING = 16  # sign-ins waiting for a check; beyond, 429 at once instead of a queue without end


@dataclass
class Principal:
    user: str
    role: Role
    token: str
    csrf: str
    last_seen: float
    via: str = "cookie"
    password_hash: str = ""  # the user's when signed in: a changed password ends the session

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


def read_users_file(path: Path) -> tuple[User, ...]:
    """The `users:` of a hub.yaml alone (ConfigError when they, or the file, do not read)."""
    from hub.web.settings import read_users
    from lecis.yaml_loader import Fields, load_yaml

    f = Fields(load_yaml(path, "a hub config"))
    users = read_users(f)
    if f.problems:
        raise LabedgeError("; ".join(str(p) for p in f.problems))
    return users


class Authenticator:
    def __init__(self, users: tuple[User, ...], clock: Clock, idle_s: float,
                 users_file: Path | None = None) -> None:
        self.users = {u.name: u for u in users}
        self.clock = clock
        self.idle_s = idle_s
        self.users_file = users_file
        self._file_key = self._stat()
        self._sessions: OrderedDict[str, Principal] = OrderedDict()
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._checking: set[str] = set()
        self._checks = asyncio.Semaphore(MAX_CHECKS)  # the thread pool stays free for the recorder's reads
        self._waiting = 0

    def _stat(self) -> tuple[int, int, int] | None:
        if self.users_file is None:
            return None
        try:
            st = os.stat(self.users_file)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self) -> None:
        """Read the users again when hub.yaml changed; one that does not read keeps the ones before."""
        key = self._stat()
        if key is None or key == self._file_key:
            return
        self._file_key = key
        assert self.users_file is not None
        try:
            self.users = {u.name: u for u in read_users_file(self.users_file)}
        except (LabedgeError, OSError, ValueError) as exc:
            log.warning("the users of %s were not read again (%s); the ones before stay",
                        self.users_file, exc)

    async def login(self, client: str, name: str, password: str) -> Principal:
        """A new session, or ApiError 401 (no hint which part was wrong) / 429 while throttled."""
        self.refresh()
        self._throttle(client)
        if client in self._checking:  # one check at a time per client: parallel tries cannot outrun the wait
            raise ApiError(429, None, "a sign-in from this address is being checked; try again in 1 s",
                           retry_after=1.0)
        if self._waiting >= MAX_WAITING:
            raise ApiError(429, None, "the hub is checking many sign-ins; try again in 1 s", retry_after=1.0)
        self._checking.add(client)
        self._waiting += 1
        try:
            user = self.users.get(name)
            async with self._checks:
                ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
            return self._signed_in(client, user if ok else None)
        finally:
            self._waiting -= 1
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
        principal = Principal(user.name, user.role, secrets.token_urlsafe(32), secrets.token_urlsafe(24), now,
                              password_hash=user.password_hash)
        self._sessions[principal.token] = principal
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return principal

    def session(self, token: str | None) -> Principal | None:
        """The signed-in principal of `token`, or None (unknown, expired, or the user was removed)."""
        if not token:
            return None
        self.refresh()
        principal = self._sessions.get(token)
        now = self.clock.monotonic()
        if principal is None:
            return None
        user = self.users.get(principal.user)
        if now - principal.last_seen > self.idle_s or user is None or \
                (principal.password_hash and user.password_hash != principal.password_hash):
            self._sessions.pop(token, None)
            return None
        principal.role = user.role
        principal.last_seen = now
        self._sessions.move_to_end(token)
        return principal

    def still_valid(self, token: str) -> bool:
        """Whether `token` still signs someone in, without counting as a use (for open live streams)."""
        self.refresh()
        principal = self._sessions.get(token)
        if principal is None:
            return False
        user = self.users.get(principal.user)
        return user is not None and self.clock.monotonic() - principal.last_seen <= self.idle_s and \
            (not principal.password_hash or user.password_hash == principal.password_hash)

    def logout(self, token: str) -> None:
        self._sessions.pop(token, None)
