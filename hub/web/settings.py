"""The `web:` and `users:` keys of hub.yaml, read strictly (every problem with its line).

```yaml
web: {host: 127.0.0.1, port: 8080}
users:
  ada: {role: operator, password_hash: "$argon2id$v=19$..."}
```
Hashes are argon2 (`labedge hub user add` writes them); a plain password is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lecis.yaml_loader import MISSING, Fields

WEB_KEYS = ("host", "port", "cookie_secure", "session_idle_s", "supervisor")
USER_KEYS = ("role", "password_hash")
ROLES = ("viewer", "operator")
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
HASH_PREFIX = "$argon2"

Role = Literal["viewer", "operator"]


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str


@dataclass(frozen=True)
class WebConfig:
    """Where the dashboard listens; the cookie's Secure flag follows the scheme unless forced."""

    host: str = "127.0.0.1"
    port: int = 8080
    cookie_secure: bool | None = None  # None: Secure when the request came over https (or a TLS proxy)
    session_idle_s: float = 12 * 3600.0
    # The supervisord whose processes the page lists: a URL, False (never), None (SUPERVISOR_SERVER_URL).
    supervisor: str | bool | None = None


def read_web(f: Fields) -> WebConfig | None:
    if f.mapping(("web",), WEB_KEYS, what="a mapping such as {host: 127.0.0.1, port: 8080}") is None:
        return None
    host = f.string(("web", "host"), "127.0.0.1", expected="an address to listen on, e.g. 127.0.0.1")
    port = f.integer(("web", "port"), 8080, minimum=0, maximum=65535)
    secure = None
    if f.value(("web", "cookie_secure")) not in (MISSING, None):
        secure = f.boolean(("web", "cookie_secure"), False)
    idle = f.number(("web", "session_idle_s"), 12 * 3600.0, minimum=60, maximum=30 * 86400)
    supervisor: str | bool | None = None
    raw = f.value(("web", "supervisor"))
    if raw is False:
        supervisor = False
    elif raw not in (MISSING, None):
        supervisor = f.string(("web", "supervisor"), None,
                              expected="unix:///PATH/supervisor.sock, http://HOST:PORT, or false")
        if supervisor is not None and not supervisor.startswith(("unix:///", "http://")):
            f.problem(("web", "supervisor"), f"{supervisor!r} is not a supervisord address: "
                      "unix:///var/run/supervisor.sock or http://HOST:PORT (or false: show no processes)")
            supervisor = None
    return WebConfig(host, port, secure, idle, supervisor)


def read_users(f: Fields) -> tuple[User, ...]:
    users = f.mapping(("users",), None, what="a mapping of user name to {role, password_hash}")
    if not users:
        return ()
    out: list[User] = []
    for name in users:
        where = ("users", name)
        if not isinstance(name, str) or not USER_NAME.match(name):
            f.problem(where, f"user name {name!r} must be 1 to 32 lower-case letters, digits, "
                      "'.', '_' or '-'")
            continue
        what = "a mapping {role: ..., password_hash: ...}"
        if f.mapping(where, USER_KEYS, required=True, what=what) is None:
            continue
        role = f.string(where + ("role",), None, required=True, choices=ROLES)
        digest = f.string(where + ("password_hash",), None, required=True,
                          expected="an argon2 hash written by `labedge hub user add`")
        if digest is not None and not digest.startswith(HASH_PREFIX):
            f.problem(where + ("password_hash",), "is not an argon2 hash (a plain password is never stored); "
                      f"set it with: labedge hub user add {name} --role {role or 'viewer'} --config hub.yaml")
            continue
        if role is not None and digest is not None:
            out.append(User(name, role, digest))  # type: ignore[arg-type]
    return tuple(out)


def check_web_users(f: Fields, web: WebConfig | None, users: tuple[User, ...]) -> None:
    if web is not None and not users and not f.problems:
        f.problem(("web",), "the dashboard needs at least one user under users: (add one with "
                  "labedge hub user add NAME --role operator --config hub.yaml)")
