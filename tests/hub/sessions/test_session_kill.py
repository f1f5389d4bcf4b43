"""`kill -9` of a process writing the session log, at random moments: every acknowledged change survives.

The child starts and stops sessions of three units as fast as it can and prints
each change once `start`/`stop` has returned (what a caller would have been
told). The parent kills it with SIGKILL after a random while, reopens the log
(a restart: RECOVERED events), and checks that every printed change is in it,
that a session row never lacks its START event (nor a stopped one its END),
and that no unit has two open sessions. Eight kills in a row over one folder.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from hub.sessions.log import LOG_NAME, SessionLog
from hub.sessions.model import SessionState
from tests.hub.sessions.test_service import service

ROOT = Path(__file__).resolve().parents[3]

CHILD = """
import asyncio, sys
from pathlib import Path
from hub.sessions.model import SessionRefused, SessionSource
from hub.sessions.service import NoUploads, SessionService
from hub.sessions.log import LOG_NAME
from lecis.clock import SystemClock

async def main(folder):
    async with SessionService(folder / LOG_NAME, folder, SystemClock(), None, NoUploads()) as sessions:
        print("ready", flush=True)
        i = 0
        while True:
            unit = f"u{i % 3}"
            i += 1
            try:
                if sessions.current(unit) is None:
                    s = await sessions.start(unit, source=SessionSource.CLI, experiment=f"run {i}")
                    print("open", s.id, flush=True)
                else:
                    s = await sessions.stop(unit, source=SessionSource.CLI)
                    print("stopped", s.id, flush=True)
            except SessionRefused:
                pass
            await asyncio.sleep(0)

asyncio.run(main(Path(sys.argv[1])))
"""


def kill_at_random(folder: Path, rng: random.Random) -> list[tuple[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE, env=env,
                             cwd=ROOT)
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.02, 0.3))
    finally:
        child.send_signal(signal.SIGKILL)
        out = child.communicate(timeout=30)[0]
    lines = [line.split() for line in out.decode().splitlines()]
    return [(kind, sid) for kind, sid in lines if kind in ("open", "stopped")]


async def test_a_killed_writer_loses_no_acknowledged_change_and_never_half_a_change(tmp_path: Path) -> None:
    rng = random.Random(8)
    acked: dict[str, str] = {}
    for _ in range(8):
        for kind, sid in kill_at_random(tmp_path, rng):
            acked[sid] = kind if acked.get(sid) != "stopped" else "stopped"
        async with service(tmp_path) as sessions:  # the restart: recovers what is open
            for sid, kind in acked.items():
                stored = sessions.get(sid)  # SessionUnknown here: an acknowledged start lost
                if kind == "stopped":
                    assert stored.state is not SessionState.OPEN, (sid, stored)
            for unit in ("u0", "u1", "u2"):
                opened = [s for s in sessions.list(unit, 10**6) if s.state is SessionState.OPEN]
                assert len(opened) <= 1, opened
            for s in sessions.list(limit=10**6):
                kinds = [e["kind"] for e in sessions.events(s.id)]
                assert kinds[0] == "START" and kinds.count("START") == 1, (s, kinds)
                assert ("END" in kinds) == (s.state is not SessionState.OPEN), (s, kinds)
            await asyncio.sleep(0.05)  # the final transfers of recovered closing sessions finish
    assert len(acked) > 20, f"the child changed only {len(acked)} sessions before it was killed"
    assert not list(tmp_path.glob("*.tmp")), "a crash's temporary file is removed at the next start"
    log = SessionLog(tmp_path / LOG_NAME)
    log.close()
