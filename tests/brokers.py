"""A Mosquitto of a test's own: skipped when it is not installed (CI=true makes that a failure)."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.broker import MosquittoProcess, find_mosquitto


def require_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed; run `make test`, which installs it")


def own_mosquitto(**options: Any) -> MosquittoProcess:
    """A broker to start with `with` (MosquittoProcess's options: persistence, ...)."""
    require_mosquitto()
    return MosquittoProcess(**options)
