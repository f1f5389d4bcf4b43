"""A real supervisord on a unix socket in a test folder, running the programs a test gives it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HEAD = """\
[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
nodaemon=true

[unix_http_server]
file={dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock
"""
PROGRAM = """
[program:{name}]
command={command}
directory={cwd}
autostart=true
autorestart=false
startsecs=0
stopsignal=TERM
stopwaitsecs=15
redirect_stderr=true
stdout_logfile={dir}/{name}.log
"""
BIN = Path(sys.executable).parent


def ctl(folder: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "supervisorctl"), "-c", str(folder / "supervisord.conf"), *args],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout + done.stderr


@contextlib.contextmanager
def supervisord(folder: Path, programs: dict[str, str], cwd: Path | None = None) -> Iterator[str]:
    """Yields the server URL (unix://FOLDER/supervisor.sock) once supervisord answers on it."""
    from provisioning.supervisor_status import SupervisorUnreachable, process_info

    folder.mkdir(parents=True, exist_ok=True)
    text = HEAD.format(dir=folder)
    for name, command in programs.items():
        text += PROGRAM.format(name=name, command=command, dir=folder, cwd=cwd or folder)
    conf = folder / "supervisord.conf"
    conf.write_text(text)
    proc = subprocess.Popen([str(BIN / "supervisord"), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"unix://{folder}/supervisor.sock"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(SupervisorUnreachable):
                if len(process_info(url, timeout=2)) == len(programs):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                logfile = folder / "supervisord.log"
                log = logfile.read_text() if logfile.exists() else ""
                raise AssertionError(f"supervisord did not answer at {url}:\n{log[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
