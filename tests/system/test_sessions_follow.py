"""`labedge session show UNIT --follow` while the upload is under way: the bar moves with the figures.

The real CLI runs against real Mosquitto; the test plays the hub (it answers
`session.show` on `lab/hub/$cmd` and publishes the retained
`lab/hub/sessions/UNIT` with changing upload figures), so every step the CLI
must draw is known.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from provisioning.broker import MosquittoProcess
from tests.hub.sessions.system_rig import cli
from tests.system.hub_rig import write_hub

pytestmark = pytest.mark.system

MB = 1_000_000


def session(session_id: str, unit: str, state: str, done: int, pending: int, files: tuple[int, int],
            reason: str | None = None) -> dict[str, Any]:
    return {"id": session_id, "unit": unit, "state": state, "experiment": None, "user": "ana",
            "started_at": "2026-03-01T12:00:00.000Z", "started_by": "cli", "ended_at": None, "ended_by": None,
            "reason": reason, "upload": {"files_pending": files[1], "files_done": files[0],
                                         "bytes_pending": pending, "bytes_done": done, "rate_bps": 250_000.0,
                                         "errors": 0, "last_scan_at": None}}


async def play_hub(port: int, unit: str, steps: list[dict[str, Any]], ready: asyncio.Event) -> None:
    """Answers the CLI's session.show with the first step, then publishes the others in order."""
    topic = f"lab/hub/sessions/{unit}"
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"fake-hub-{uuid.uuid4().hex[:6]}") as client:
        await client.publish(topic, json.dumps(steps[0]).encode(), qos=1, retain=True)
        await client.subscribe("lab/hub/$cmd", qos=1)
        ready.set()
        async for message in client.messages:
            command = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            assert command["cmd"] == "session.show" and command["args"]["unit"] == unit
            reply = {"id": command["id"], "status": "done",
                     "result": {"session": steps[0], "events": [], "files": 3}}
            await client.publish("lab/hub/$reply", json.dumps(reply).encode(), qos=1)
            for step in steps[1:]:  # the CLI subscribed before it asked: it sees each one, in order
                await client.publish(topic, json.dumps(step).encode(), qos=1, retain=True)
            return


@pytest.mark.parametrize("ending", ["closed", "error"])
async def test_follow_draws_the_upload_as_it_goes_until_the_session_ends(
        tmp_path: Path, mosquitto: MosquittoProcess, ending: str) -> None:
    unit = f"follow-{ending}"
    sid, next_sid = str(uuid.uuid4()), str(uuid.uuid4())
    steps = [session(sid, unit, "open", 0, 10 * MB, (0, 3)),
             session(sid, unit, "open", 4 * MB, 6 * MB, (1, 2)),
             session(next_sid, unit, "open", 0, 0, (0, 0)),  # another session of the unit: not this one's bar
             session(sid, unit, "closing", 8 * MB, 2 * MB, (2, 1), "the final transfer runs"),
             session(sid, unit, ending, 10 * MB if ending == "closed" else 8 * MB,
                     0 if ending == "closed" else 2 * MB, (3, 0) if ending == "closed" else (2, 1),
                     None if ending == "closed" else "the recorder could not open the session's files")]
    config = write_hub(tmp_path / "hub", mosquitto.port, None, hub="hub-follow")
    ready = asyncio.Event()
    fake = asyncio.create_task(play_hub(mosquitto.port, unit, steps, ready))
    await ready.wait()
    result = await cli("show", unit, "--config", str(config), "--follow")
    await fake
    lines = result.stdout.splitlines()
    bars = [line for line in lines if line.startswith("[")]
    assert [bar.split("]")[1].split()[0] for bar in bars] == \
        ["0%", "40%", "80%", "100%" if ending == "closed" else "80%"], lines
    assert "4.0 MB/10.0 MB" in bars[1] and "1/3 files" in bars[1] and "250.0 kB/s" in bars[1]
    assert bars[2].endswith("closing") and "2/3 files" in bars[2]
    assert bars[3].endswith(ending)
    assert lines[-1].startswith(f"session {sid} {ending}")
    if ending == "closed":
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1 and "could not open the session's files" in lines[-1]
