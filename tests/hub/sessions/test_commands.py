"""session.* commands in process: the largest answers still fit one MQTT payload."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.sessions.commands import MAX_LIST, SessionCommands
from hub.sessions.model import SessionSource
from lecis.commands import Command
from lecis.errors import CommandRejected
from lecis.wire import MAX_PAYLOAD_BYTES, to_bytes
from tests.hub.sessions.test_service import service


async def test_the_longest_list_and_show_fit_in_a_payload(tmp_path: Path) -> None:
    sessions = service(tmp_path)
    async with sessions:
        commands = SessionCommands(sessions, lambda: {"bench-1"})
        name = "\U0001f9ea" * 200  # 4 UTF-8 bytes each (a test tube), the longest name taken
        for _ in range(MAX_LIST + 5):
            await sessions.start("bench-1", source=SessionSource.CLI, experiment=name, user="u" * 100)
            await sessions.stop("bench-1", source=SessionSource.CLI)
        listed = await commands(Command("l", "session.list", {"limit": MAX_LIST}))
        assert len(listed["sessions"]) == MAX_LIST
        assert len(to_bytes({"id": "l", "status": "done", "result": listed})) < MAX_PAYLOAD_BYTES // 2
        last = sessions.list("bench-1", 1)[0]
        for i in range(300):  # many files with long names that could not be sent
            sessions.upload_file(last.id, {"path": f"{'d' * 2000}/{i}.csv", "error": "e" * 3000})
        sessions._flush_files()
        shown = await commands(Command("s", "session.show", {"unit": "bench-1"}))
        assert len(shown["events"]) == 50 and shown["files"] == 300
        assert len(to_bytes({"id": "s", "status": "done", "result": shown})) < MAX_PAYLOAD_BYTES // 2
        with pytest.raises(CommandRejected, match="from 1 to 200"):
            await commands(Command("l2", "session.list", {"limit": MAX_LIST + 1}))
