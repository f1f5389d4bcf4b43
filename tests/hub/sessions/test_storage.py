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

# Writes version after version of a ~1 MB document and prints each number once it is written. With a
# stop point, the write pauses there (saying so) so that the kill lands exactly in it: `half` with half of
# the temporary file written, `synced` with the temporary file complete and fsynced but not yet renamed.
WRITER = r"""
import os, sys, time
from hub.sessions.storage import SafeJSONStorage

path, start, stop_at = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_write, real_fsync = os.write, os.fsync
writes = 0

def pause(what):
    print(what, flush=True)
    time.sleep(30)

def write(fd, data):
    global writes
    writes += 1
    if stop_at == "half" and writes > 2:
        real_write(fd, data[: len(data) // 2])
        pause("half")
    return real_write(fd, data)

def fsync(fd):
    real_fsync(fd)
    if stop_at == "synced" and writes > 2 and not os.path.isdir(f"/proc/self/fd/{fd}"):
        pause("synced")

os.write = write  # the os module every writer shares (lecis.atomic_file's too)
os.fsync = fsync
storage = SafeJSONStorage(path)
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


@pytest.mark.parametrize("stop_at", ["half", "synced", "anywhere"])
def test_a_writer_killed_mid_write_leaves_the_old_or_the_new_version(tmp_path: Path, stop_at: str) -> None:
    path = tmp_path / "log.json"
    SafeJSONStorage(path).write({"_default": {"1": {"n": 0, "pad": "", "tail": 0}}})
    rng = random.Random(stop_at)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    for kill in range(12):
        before = _version(path)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(before), stop_at],
                                stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        confirmed = before
        while True:
            line = proc.stdout.readline().strip()
            assert line, "the writer ended by itself"
            if line in (b"half", b"synced"):
                break
            confirmed = int(line)
            if stop_at == "anywhere" and confirmed >= before + rng.randint(1, 3):
                time.sleep(rng.uniform(0, 0.01))  # somewhere in the next write, or between two
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        confirmed = max([confirmed, *(int(x) for x in proc.stdout.read().split() if x.isdigit())])
        proc.stdout.close()
        if stop_at != "anywhere":
            assert (tmp_path / "log.json.tmp").exists(), "killed inside the write"
        after = _version(path)
        if stop_at == "anywhere":
            assert after in (confirmed, confirmed + 1), f"kill {kill}: {after} after {confirmed} was written"
        else:
            assert after == confirmed, f"kill {kill} before the rename: {after}, not the old {confirmed}"
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
