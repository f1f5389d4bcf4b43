"""Size limits of hub commands agree with the script limit, and `labedge script apply` says them first."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hub.app import Hub
from hub.cli import EXIT_USAGE, apply_script
from hub.hub_commands import MAX_SCRIPT_CHARS, HubCommands
from provisioning.broker import MosquittoProcess
from tests.hub.test_app import SCRIPT, config, state, unit_and_watch, write_script
from tests.hub.test_app_hub_commands import FakeExperiment, Harness


async def test_a_script_over_64_kib_is_applied() -> None:
    experiment = FakeExperiment()
    h = Harness(experiment)
    text = "experiment: x\n" + "# a long comment line, padding the script past 64 KiB\n" * 1500
    assert 70_000 < len(text) < MAX_SCRIPT_CHARS
    reply = await h.call("big", "script.apply", {"text": text, "author": "ana"})
    assert reply["id"] == "big" and reply["status"] == "done", reply
    assert experiment.applied == [(text, "ana")]


async def test_a_script_over_the_limit_is_refused_naming_its_id_and_the_limit() -> None:
    h = Harness(FakeExperiment())
    reply = await h.call("huge", "script.apply", {"text": "x" * (MAX_SCRIPT_CHARS + 1), "author": "ana"})
    assert reply["id"] == "huge" and reply["status"] == "rejected"
    assert f"a script is at most {MAX_SCRIPT_CHARS}" in reply["error"]["message"]


async def test_a_huge_payload_is_still_refused() -> None:
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def publish(payload: bytes) -> None:
        sent.append(json.loads(payload))
        done.set()

    commands = HubCommands(FakeExperiment(), publish)
    commands.feed(json.dumps({"id": "x", "cmd": "script.apply", "args": {"text": "y" * 2_000_000}}).encode())
    await asyncio.wait_for(done.wait(), 5)
    assert sent[0]["status"] == "rejected" and "the limit is" in sent[0]["error"]["message"]


@pytest.mark.parametrize("text, says", [
    ("x" * (MAX_SCRIPT_CHARS + 1), f"the hub takes scripts of at most {MAX_SCRIPT_CHARS}"),
    ("\x01" * (MAX_SCRIPT_CHARS - 1), "bytes as JSON; the hub takes commands of at most"),
])
async def test_apply_checks_the_size_before_sending(text: str, says: str, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    # No broker listens on port 1: the size is refused before any connection is tried.
    nowhere = SimpleNamespace(hub="hub-x", topic_root="lab", mqtt=None, broker=None)
    status = await apply_script(nowhere, text, "ana", 5.0, str(tmp_path / "big.yaml"))
    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert f"{tmp_path / 'big.yaml'}: the script is" in err and says in err and "nothing was sent" in err


async def test_a_70_kb_script_goes_through_the_broker_to_a_running_hub(
        tmp_path: Path, mosquitto: MosquittoProcess, capsys: pytest.CaptureFixture[str]) -> None:
    port = mosquitto.port
    async with unit_and_watch(tmp_path, "app-big", port) as (_, found):
        hub_config = config(tmp_path, port, write_script(tmp_path, "app-big"), "hub-big")
        async with Hub(hub_config):
            await found.wait_for(lambda: state(found, "hub-big").get("state") == "running", 15, "the run")
            text = SCRIPT.format(unit="app-big", close="1h") + "# padding past 64 KiB of script\n" * 2200
            assert len(text.encode()) > 70_000
            status = await apply_script(hub_config, text, "ana", 20.0, "big.yaml")
            out = capsys.readouterr()
            assert status == 0, out.err
            assert '"version": 2' in out.out
