"""Zero-setup deployments (no REDIS_URL, no DATABASE_URL) in a temporary data folder."""

from __future__ import annotations

import json
import os
import pty
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import ROOT, run_cli, wait_for, worker_env
from worker.redis_server import free_port


class Zero:
    """One data folder with its embedded server; `cli()` and `worker()` run in it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = worker_env(redis_url="", database_url="", data_dir=data_dir)
        del self.env["REDIS_URL"], self.env["DATABASE_URL"]
        self.env["WORKER_SHUTDOWN_GRACE"] = "20"
        # Not 6379: other software on a shared machine dials that port by default.
        self.env["WORKER_EMBEDDED_PORT"] = str(free_port())

    def cli(self, *args: str, check: bool = True) -> Any:
        return run_cli(list(args), self.env, check=check)

    def server_url(self) -> str | None:
        """The embedded server's URL while it answers, else None."""
        try:
            url = json.loads((self.data_dir / "redis" / "server.json").read_text())["url"]
            redis.Redis.from_url(url, socket_connect_timeout=0.3).ping()
        except (OSError, ValueError, KeyError, redis.RedisError):
            return None
        return url

    def status(self, job_id: str) -> str:
        out = run_cli(["status", job_id, "--json"], self.env, check=False).stdout
        return json.loads(out)["status"] if out.strip() else "unknown"


class Terminal:
    """`python -m worker run` on a pseudo-terminal, as a user's shell would start it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: session leader, the pty its controlling terminal
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "worker", "run"], env)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def ctrl_c(self) -> None:
        """Type Ctrl-C: the terminal sends SIGINT to its whole foreground process group."""
        os.write(self.fd, b"\x03")

    def wait(self, timeout: float = 60) -> int:
        def ended() -> int | None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            return os.waitstatus_to_exitcode(status) if pid else None

        code = wait_for(lambda: (c := ended()) is not None and (c,), timeout=timeout)[0]
        self._reader.join(5)
        os.close(self.fd)
        return code


@pytest.fixture
def zero(tmp_path: Path) -> Iterator[Zero]:
    z = Zero(tmp_path / "var")
    yield z
    if url := z.server_url():  # never leave a server behind
        redis.Redis.from_url(url).shutdown(nosave=False)
