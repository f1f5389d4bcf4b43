"""Process states from a running supervisord, over its XML-RPC interface (unix socket or http).

`labedge lab status` prints them; the dashboard may call `process_info` for
the same rows. On a Pi with Debian's supervisor package the socket is
`unix:///var/run/supervisor.sock`.
"""

from __future__ import annotations

import socket
import xmlrpc.client
from dataclasses import dataclass
from typing import Any

from lecis.errors import LabedgeError

PI_SERVER_URL = "unix:///var/run/supervisor.sock"


class SupervisorUnreachable(LabedgeError):
    """No supervisord answers at the given address."""


@dataclass(frozen=True)
class ProcessInfo:
    name: str  # group:name when the program is in a group of several
    state: str  # RUNNING, STOPPED, STARTING, BACKOFF, FATAL, EXITED, STOPPING, UNKNOWN
    description: str  # supervisord's own words: "pid 1234, uptime 0:01:02"
    pid: int


def _proxy(serverurl: str, username: str | None, password: str | None) -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(username, password, serverurl)
    # The URL is only for xmlrpc.client; the transport connects to serverurl itself.
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def process_info(serverurl: str, username: str | None = None, password: str | None = None,
                 timeout: float = 5.0) -> list[ProcessInfo]:
    """Every process supervisord runs, in its order; SupervisorUnreachable when none answers."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # SupervisorTransport opens its connections without a timeout
    try:
        rows = _proxy(serverurl, username, password).supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.ProtocolError) as exc:
        raise SupervisorUnreachable(f"no supervisord answers at {serverurl} ({exc}); is it running? "
                                    f"(sudo systemctl status supervisor on a Pi)") from None
    except xmlrpc.client.Fault as exc:
        raise SupervisorUnreachable(f"supervisord at {serverurl} refused the request: {exc.faultString}") \
            from None
    finally:
        socket.setdefaulttimeout(previous)
    out = []
    for row in rows:
        name = row["name"] if row["group"] == row["name"] else f"{row['group']}:{row['name']}"
        out.append(ProcessInfo(name, str(row["statename"]), str(row["description"]), int(row["pid"])))
    return out


def process_states(serverurl: str, username: str | None = None,
                   password: str | None = None) -> dict[str, str]:
    """Process name -> state name."""
    return {info.name: info.state for info in process_info(serverurl, username, password)}


def format_status(rows: list[ProcessInfo]) -> str:
    width = max((len(row.name) for row in rows), default=4)
    return "\n".join(f"{row.name:<{width}}  {row.state:<8}  {row.description}" for row in rows)
