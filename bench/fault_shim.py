"""Build bench/fault_shim.c (a slow, stuck or full disk for LD_PRELOAD) and the environment to use it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from lecis.errors import LabedgeError

SOURCE = Path(__file__).with_name("fault_shim.c")


class ShimBuildFailed(LabedgeError):
    """gcc is missing or could not build the fault shim."""


def build_shim(out_dir: Path | None = None) -> Path:
    """Compile the shim (once per source version) and return the path of the shared object."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise ShimBuildFailed("gcc is not installed (apt-get install gcc); the fault shim needs it")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    target = (out_dir or Path(tempfile.gettempdir())) / f"labedge-fault-shim-{digest}.so"
    if target.exists():
        return target
    partial = target.with_suffix(f".{digest}.tmp")
    result = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(partial), str(SOURCE), "-ldl"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise ShimBuildFailed(f"gcc could not build {SOURCE}: {result.stderr.strip()}")
    partial.replace(target)
    return target


def shim_env(shim: Path, fsync_delay_ms: int = 0, hold: Path | None = None, held: Path | None = None,
             enospc: Path | None = None, count: Path | None = None,
             enospc_match: str | None = None) -> dict[str, str]:
    """Environment for a process that runs on the faulty disk (`enospc_match`: which paths fill up)."""
    env = {"LD_PRELOAD": str(shim), "LABEDGE_FSYNC_DELAY_MS": str(fsync_delay_ms)}
    if enospc_match is not None:
        env["LABEDGE_ENOSPC_MATCH"] = enospc_match
    for name, path in (("LABEDGE_FSYNC_HOLD", hold), ("LABEDGE_FSYNC_HELD", held),
                       ("LABEDGE_ENOSPC", enospc), ("LABEDGE_FSYNC_COUNT", count)):
        if path is not None:
            env[name] = str(path)
    return env
