"""The uploader alone in a process, for the kill -9 test: `run_uploader.py HUB_YAML SESSION_ID begin|finish`.

`begin` uploads the session's files until killed; `finish` runs the final
transfer and prints the FinalTransfer and the progress as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from hub.config import load_hub_config
from hub.sessions.model import Session, SessionSource
from hub.upload.uploader import Uploader
from lecis.clock import SystemClock


async def main(config_path: str, session_id: str, mode: str) -> None:
    config = load_hub_config(Path(config_path))
    session = Session(session_id, "bench-1", None, None, "2026-12-01T12:00:00.000Z", SessionSource.CLI)
    quiet = (lambda sid, p: None, lambda sid, row: None)
    async with Uploader(config, config.data_dir, SystemClock(), *quiet) as up:
        if mode == "begin":
            up.begin(session)
            await asyncio.Event().wait()
        result = await up.finish(session)
        out = {"verified": result.verified, "summary": result.summary(), "objects": result.objects}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
