"""A local Sentinel setup for tests and benches: one master, one replica, three Sentinels,
all on loopback ports in one folder (Debian's `redis-server` and `redis-sentinel`)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from worker.redis_server import free_port, server_binary

MASTER_NAME = "mymaster"


def _wait_ping(port: int, timeout: float = 10.0) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answers on port {port}")


class SentinelCluster:
    """Start with `start()`, stop with `stop()`; `sentinels` is the REDIS_SENTINELS value."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def _server(self, port: int, *extra: str) -> None:
        data = self.folder / f"redis-{port}"
        data.mkdir(parents=True, exist_ok=True)
        args = [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
        args += ["--appendonly", "yes", "--save", "", "--protected-mode", "no", *extra]
        self.procs.append(
            subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        _wait_ping(port)

    def _sentinel(self, port: int) -> None:
        conf = self.folder / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.folder}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.ports[0]} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        binary = shutil.which("redis-sentinel") or "redis-sentinel"
        self.procs.append(
            subprocess.Popen(
                [binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        _wait_ping(port)

    def start(self) -> SentinelCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        master, replica = self.ports
        self._server(master)
        self._server(replica, "--replicaof", "127.0.0.1", str(master))
        for port in self.sentinel_ports:
            self._sentinel(port)
        self.wait_ready()
        return self

    def sentinel(self, i: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[i], decode_responses=True)

    def master_port(self) -> int:
        return int(self.sentinel().sentinel_get_master_addr_by_name(MASTER_NAME)[1])

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every Sentinel knows the replica and the other Sentinels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [self.sentinel(i).sentinel_master(MASTER_NAME) for i in range(3)]
            if all(s["num-slaves"] >= 1 and s["num-other-sentinels"] >= 2 for s in states):
                link = redis.Redis(port=self.ports[1]).info("replication")
                if link.get("master_link_status") == "up":
                    return
            time.sleep(0.2)
        raise TimeoutError("the Sentinels did not discover each other in time")

    def failover(self, timeout: float = 30.0) -> int:
        """`SENTINEL FAILOVER`; waits until the replica is the master; its port."""
        old = self.master_port()
        self.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.master_port()
            if port != old and redis.Redis(port=port).info("replication")["role"] == "master":
                return port
            time.sleep(0.05)
        raise TimeoutError("the failover did not complete in time")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.procs.clear()
