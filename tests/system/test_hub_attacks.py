"""The running hub attacked the way an operator's mistakes attack it: new script versions sent in a burst
(good, broken, good), a version sent while the experiment is paused, a version accepted just before the
hub is killed with SIGKILL. Every `script.apply` is answered once; the version that runs is the last one
accepted, also after the restart.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from lecis.mqtt_session import MqttSession, SessionConfig
from lecis.topics import Topics
from lecis.wire import to_bytes
from provisioning.broker import MosquittoProcess
from tests.rig import Probe, probe
from tests.system.hub_rig import SYSTEM_SCRIPT, bench, exited, last_state, start_hub, start_running
from tests.system.processes import stop

pytestmark = pytest.mark.system
WAIT_S = 30.0


def version(v1: str, tag: str) -> str:
    """v1 with a log line of its own at the end of the `tick` task."""
    return v1.replace("      - wait: 1s\n      - {u}/aeration: off".replace("{u}", UNIT),
                      "      - wait: 1s\n      - {u}/aeration: off\n      - log: \"{t}\"".replace("{u}", UNIT)
                      .replace("{t}", tag))


UNIT = "atk-1"


async def send(session: MqttSession, cmd: str, args: dict[str, Any] | None = None) -> str:
    cid = uuid.uuid4().hex
    await session.publish(Topics().hub_cmd(), to_bytes({"id": cid, "cmd": cmd, "args": args or {}}))
    return cid


async def final(found: Probe, cid: str) -> dict[str, Any]:
    def answered() -> list[dict[str, Any]]:
        return [r for r in found.on("lab/hub/$reply") if isinstance(r, dict) and r.get("id") == cid
                and r.get("status") in ("done", "rejected", "failed")]

    replies = await found.wait_for(answered, WAIT_S, f"the final reply to {cid}")
    assert len(replies) == 1, replies
    return replies[0]


async def test_script_versions_in_a_burst_during_a_pause_and_before_a_kill(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    port, hub_id = mosquitto.port, f"hub-atk-{uuid.uuid4().hex[:4]}"
    v1 = SYSTEM_SCRIPT.format(unit=UNIT, heat_at="1h")
    broken = v1.replace(f"{UNIT}/aeration: off", f"{UNIT}/aeration: of")
    async with probe("127.0.0.1", port, pattern="lab/hub/#") as found, \
            MqttSession(SessionConfig(port=port)) as session:
        hub, _ = await start_running(tmp_path, port, UNIT, hub_id, found, heat_at="1h")
        try:
            with bench(tmp_path, UNIT, port):
                await found.wait_for(lambda: last_state(found, hub_id).get("state") == "running", 60,
                                     "the run")

                # Good, broken, good: sent back to back, each answered once, the last good one runs.
                ids = [await send(session, "script.apply", {"text": text, "author": "ana"})
                       for text in (version(v1, "v2"), broken, version(v1, "v3"))]
                replies = [await final(found, cid) for cid in ids]
                assert [r["status"] for r in replies] == ["done", "rejected", "done"], replies
                assert replies[1]["error"]["kind"] == "validation" and replies[1]["error"]["param"] == "text"
                assert replies[1]["result"]["problems"], replies[1]
                assert replies[2]["result"]["version"] == replies[0]["result"]["version"] + 1
                v3 = replies[2]["result"]["version"]
                await found.wait_for(lambda: last_state(found, hub_id).get("script_version") == v3, WAIT_S,
                                     "v3 running")

                # A version sent while paused is answered, and does not end the pause.
                assert (await final(found, await send(session, "experiment.pause")))["status"] == "done"
                await found.wait_for(lambda: last_state(found, hub_id).get("state") == "paused", WAIT_S,
                                     "paused")
                during = await final(found, await send(session, "script.apply",
                                                       {"text": version(v1, "v4"), "author": "ana"}))
                assert during["status"] == "done", during
                v4 = during["result"]["version"]
                assert last_state(found, hub_id).get("state") == "paused"
                assert (await final(found, await send(session, "experiment.resume")))["status"] == "done"
                await found.wait_for(lambda: last_state(found, hub_id).get("script_version") == v4
                                     and last_state(found, hub_id).get("state") == "running", WAIT_S, "v4")

                # Accepted, then SIGKILL at once: the restarted hub runs that version.
                last = await final(found, await send(session, "script.apply",
                                                     {"text": version(v1, "v5"), "author": "bo"}))
                assert last["status"] == "done", last
                v5 = last["result"]["version"]
                hub.send_signal(signal.SIGKILL)
                await exited(hub)
                await found.wait_for(lambda: (found.last("lab/hub/$state") or {}).get("online") is False,
                                     WAIT_S, "the killed hub's will")
                seen = len(found.messages)
                hub = start_hub(tmp_path / "hub" / "hub.yaml", tmp_path / "hub-2.log")

                def since(topic: str) -> list[Any]:
                    return [m.payload for m in found.messages[seen:] if m.topic == topic
                            and isinstance(m.payload, dict)]

                await found.wait_for(lambda: any(s.get("hub") == hub_id and s.get("state") == "running"
                                                 and s.get("script_version") == v5
                                                 for s in since("lab/hub/experiment/state")), 60,
                                     "the restarted hub running v5")
                await found.wait_for(lambda: any(e.get("message") == "v5"
                                                 for e in since("lab/hub/experiment/event")), WAIT_S,
                                     "v5's log line from the restarted hub")
                listed = await final(found, await send(session, "script.versions"))
                numbers = [v["version"] for v in listed["result"]["versions"]]
                assert numbers == sorted(numbers) and {1, v3, v4, v5} <= set(numbers), listed
        finally:
            assert stop(hub) == 0
