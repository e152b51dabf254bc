"""The systemd notify protocol, against a NOTIFY_SOCKET the test itself listens on."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from config import Settings
from tests.support import start_worker, wait_for, worker_env
from worker.keys import Keys
from worker.ops import Ops
from worker.stats import Stats


class Listener:
    """A bound datagram socket recording (monotonic time, message) pairs."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def lines(self, prefix: str = "") -> list[tuple[float, str]]:
        return [(t, m) for t, m in list(self.messages) if m.startswith(prefix)]

    def first(self, text: str) -> float:
        return next(t for t, m in list(self.messages) if m.startswith(text))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    sock = Listener(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.mark.integration
def test_ready_status_watchdog_and_stopping_arrive_in_order_and_survive_a_long_job(
    listener: Listener, redis_url: str, tmp_path: Path
) -> None:
    env = worker_env(
        redis_url=redis_url,
        database_url=f"sqlite:///{tmp_path / 'stoker.db'}",
        data_dir=tmp_path,
        heartbeat_ttl=5,
        NOTIFY_SOCKET=listener.path,
        WATCHDOG_USEC="1000000",  # pings every 0.5 s
    )
    (tmp_path / "media").mkdir(exist_ok=True)
    proc = start_worker(env, "--id", "notify-w", log_path=tmp_path / "worker.log")
    try:
        wait_for(lambda: listener.lines("READY=1"), 120, 0.05)
        client = redis.Redis.from_url(redis_url)
        job = {"id": "long-gpu-job", "processor": "echo", "params": {"sleep": 3}}
        client.lpush(Keys().queue("default"), json.dumps(job))
        wait_for(lambda: listener.lines("STATUS=running long-gpu-job (echo)"), 60, 0.05)
        started = time.monotonic()
        wait_for(lambda: [t for t, _ in listener.lines("STATUS=idle") if t > started], 60, 0.05)
        ended = max(t for t, _ in listener.lines("STATUS=idle"))
        during = [t for t, _ in listener.lines("WATCHDOG=1") if started <= t <= ended]
        assert len(during) >= 4, "the supervisor must keep pinging while the executor works"

        # A frozen supervisor (SIGSTOP) stops pinging: systemd would restart it.
        proc.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        time.sleep(2.0)
        thawed_at = time.monotonic()
        proc.send_signal(signal.SIGCONT)
        # (A ping sent just before the SIGSTOP may be read a little later by the listener.)
        assert not [t for t, _ in listener.lines("WATCHDOG=1") if frozen_at + 0.5 < t < thawed_at]
        wait_for(lambda: [t for t, _ in listener.lines("WATCHDOG=1") if t > thawed_at], 60, 0.05)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    order = [
        listener.first("STATUS=starting"),
        listener.first("READY=1"),
        listener.first("WATCHDOG=1"),
        listener.first("STOPPING=1"),
    ]
    assert order == sorted(order)
    ready_line = [m for _, m in listener.messages if m.startswith("STATUS=")]
    assert any("succeeded" in m and "queues default" in m for m in ready_line)


def _fake_worker(settings: Settings) -> SimpleNamespace:
    return SimpleNamespace(
        settings=settings,
        worker_id="fake",
        client=None,
        keys=Keys(),
        store=SimpleNamespace(url="sqlite://"),
        executor=SimpleNamespace(restarts=0, reports=[]),
        heartbeat=SimpleNamespace(fields={}),
        current=None,
        stopping=False,
        stats=Stats(),
        queues=["default"],
    )


def test_a_hung_fetch_loop_stops_the_watchdog_pings_and_says_so(
    listener: Listener, monkeypatch: pytest.MonkeyPatch, make_settings
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    settings = make_settings(stall_timeout=0.5, retention_interval=0)
    ops = Ops(_fake_worker(settings))
    ops.start()
    ops.ready()
    try:
        wait_for(lambda: len(listener.lines("WATCHDOG=1")) >= 3, 5, 0.02)
        ops.pulse.at = time.monotonic() - 10  # the loop has not ticked for 10 s
        wait_for(lambda: listener.lines("STATUS=HUNG"), 5, 0.02)
        hung_at = listener.first("STATUS=HUNG")
        time.sleep(0.5)
        assert not [t for t, _ in listener.lines("WATCHDOG=1") if t > hung_at + 0.05]
        ops.tick()  # it recovers: pings resume
        wait_for(lambda: [t for t, _ in listener.lines("WATCHDOG=1") if t > hung_at + 0.05], 5)
    finally:
        ops.close()
    assert listener.lines("STOPPING=1")


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(
    monkeypatch: pytest.MonkeyPatch, make_settings
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    ops = Ops(_fake_worker(make_settings(retention_interval=0)))
    ops.start()
    ops.ready()
    ops.close()
    assert not ops.notifier.enabled and ops._thread is None
    assert os.environ.get("NOTIFY_SOCKET") is None
