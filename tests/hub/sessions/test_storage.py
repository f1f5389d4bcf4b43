"""SafeJSONStorage: a writer killed (SIGKILL) mid-write leaves the old or the new version; damage refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tinydb import TinyDB

from hub.sessions.storage import SafeJSONStorage, SessionLogCorrupt

# Writes version after version of a ~1 MB document and prints each number once it is written.
WRITER = r"""
import sys
from hub.sessions.storage import SafeJSONStorage

storage = SafeJSONStorage(sys.argv[1])
start = int(sys.argv[2])
pad = "x" * 1_000_000
n = start
while True:
    n += 1
    storage.write({"_default": {"1": {"n": n, "pad": pad, "tail": n}}})
    print(n, flush=True)
"""


def _version(path: Path) -> int:
    data = SafeJSONStorage(path).read()
    assert data is not None
    doc = data["_default"]["1"]
    assert doc["n"] == doc["tail"], "a mix of two versions"
    return int(doc["n"])


def test_a_writer_killed_mid_write_leaves_the_old_or_the_new_version(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    SafeJSONStorage(path).write({"_default": {"1": {"n": 0, "pad": "", "tail": 0}}})
    rng = random.Random(8)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    kills = mid_write = 0
    for _ in range(25):
        before = _version(path)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(before)],
                                stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        confirmed = before
        target = rng.randint(1, 4)  # versions to see written before the kill
        while confirmed < before + target:
            line = proc.stdout.readline()
            assert line, "the writer ended by itself"
            confirmed = int(line)
        time.sleep(rng.uniform(0, 0.02))  # somewhere inside the next write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        confirmed = max([confirmed, *(int(x) for x in proc.stdout.read().split())])
        proc.stdout.close()
        kills += 1
        mid_write += (tmp_path / "log.json.tmp").exists()
        after = _version(path)
        assert after in (confirmed, confirmed + 1), f"kill {kills}: {after} after {confirmed} was written"
    assert mid_write >= 3, f"only {mid_write} of {kills} kills came in the middle of a write"
    assert not (tmp_path / "log.json.tmp").exists(), "the unfinished temporary file is cleared on open"


def test_tinydb_over_it_keeps_every_document_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    with TinyDB(path, storage=SafeJSONStorage) as db:
        db.table("sessions").insert({"id": "a", "note": "\ud800 lone surrogate, é"})
        db.table("events").insert({"kind": "START"})
    with TinyDB(path, storage=SafeJSONStorage) as db:
        assert db.table("sessions").all() == [{"id": "a", "note": "\ud800 lone surrogate, é"}]
        assert db.table("events").all() == [{"kind": "START"}]


def test_a_batch_is_written_once(tmp_path: Path) -> None:
    storage = SafeJSONStorage(tmp_path / "log.json")
    db = TinyDB(storage=lambda: storage)
    with storage.batch():
        for i in range(50):
            db.table("files").insert({"i": i})
        assert not (tmp_path / "log.json").exists(), "nothing written until the batch ends"
    assert storage.writes == 1
    assert len(json.loads((tmp_path / "log.json").read_text())["files"]) == 50


@pytest.mark.parametrize("content, why", [
    (b"", "empty"),
    (b'{"sessions": {"1": {"id": "a"}', "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "not a session log"),
    (b'{"sessions": [1]}', "not a session log"),
    (b'{"sessions": {"1": 5}}', "not a session log"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_a_damaged_file_is_refused_naming_it_and_the_way_out(tmp_path: Path, content: bytes,
                                                             why: str) -> None:
    path = tmp_path / "log.json"
    path.write_bytes(content)
    with pytest.raises(SessionLogCorrupt) as raised:
        SafeJSONStorage(path)
    message = str(raised.value)
    assert str(path) in message and why in message and "mv " in message
    assert path.read_bytes() == content, "the damaged file is left as it was"


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    path.mkdir()  # reading a folder fails like an unreadable file
    with pytest.raises(SessionLogCorrupt, match="IsADirectoryError"):
        SafeJSONStorage(path)
