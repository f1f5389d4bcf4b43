"""The installed labedge version, read once from the package metadata (pyproject.toml)."""

from __future__ import annotations

from functools import cache
from importlib import metadata


@cache
def software_version() -> str:
    """The version `labedge --version` prints and `$birth` carries; `unknown` from a bare checkout."""
    try:
        return metadata.version("labedge")
    except metadata.PackageNotFoundError:
        return "unknown"
