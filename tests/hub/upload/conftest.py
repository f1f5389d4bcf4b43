"""Emulator fixtures for the uploader's tests (tests/hub/upload/emulators.py starts them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub.upload.emulators import Emulator, FakeGcsServer, GcpStorageEmulator, running


@pytest.fixture
def gcs_md5(tmp_path: Path) -> Iterator[Emulator]:
    """gcp-storage-emulator: checks MD5s, ignores preconditions."""
    yield from running(GcpStorageEmulator, tmp_path / "gcp-emu")


@pytest.fixture
def gcs_gen(tmp_path: Path) -> Iterator[Emulator]:
    """fake-gcs-server: enforces if_generation_match."""
    yield from running(FakeGcsServer, tmp_path / "fake-gcs")
