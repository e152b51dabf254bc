"""Is a worker alive and ready? For process managers, Kubernetes probes and operators.

- Inside the worker: `Pulse` records each tick of the fetch loop (and of the wait while
  the executor runs a job); `/healthz` fails once it has been silent past
  `WORKER_STALL_TIMEOUT`, `/readyz` checks Redis, the database, the executor and that
  processors are loaded.
- From outside (`python -m worker health`): the worker publishes `ready`, `loop_at`,
  `stall_s` and `state` in its Redis hash `<prefix>:worker:<id>` with every heartbeat;
  `judge` decides from that hash, the heartbeat key and, on the same host, the pid.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import psutil


class Pulse:
    """The last tick of the fetch loop (monotonic and wall clock)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = time.monotonic()

    def tick(self) -> None:
        self.at = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.at

    def wall(self) -> float:
        """The last tick as epoch seconds."""
        return time.time() - self.age()


class Lazy:
    """A value computed each time it is turned into a string.

    The heartbeat writes its `fields` with `str(value)` on every beat, so a `Lazy` field
    in it publishes a fresh value (the loop's last tick, the current job) without another
    Redis call or thread.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def __str__(self) -> str:
        return str(self.fn())


def judge(
    info: dict[str, Any],
    *,
    now: float,
    stall_s: float,
    host: str | None = None,
    pid_alive: Callable[[int], bool] = psutil.pid_exists,
) -> str | None:
    """None when the worker described by `info` (see `live_workers`) is healthy, else why.

    `host`: this machine's name; a worker on it whose pid is gone is dead at once,
    without waiting for its heartbeat to expire.
    """
    pid = str(info.get("pid") or "")
    if host is not None and info.get("host") == host and pid.isdigit() and not pid_alive(int(pid)):
        return f"process {pid} is gone"
    if not info.get("alive"):
        return "heartbeat expired: the worker is dead or frozen"
    if str(info.get("ready")) != "1":
        return "not ready: starting up (loading processors)"
    if info.get("state") == "stopping":
        return "stopping"
    stall = float(info.get("stall_s") or stall_s)
    loop_at = info.get("loop_at")
    if loop_at not in (None, ""):
        silent = now - float(loop_at)
        if silent > stall:
            return f"fetch loop silent for {silent:.0f} s (stall timeout {stall:g} s)"
    return None


def check_workers(
    workers: list[dict[str, Any]], *, worker_id: str | None, stall_s: float
) -> tuple[bool, list[dict[str, Any]]]:
    """Judge `worker_id`, or every worker registered on this host. (all healthy, reports)."""
    host = socket.gethostname()
    if worker_id:
        chosen = [w for w in workers if w["id"] == worker_id]
        if not chosen:
            return False, [{"id": worker_id, "healthy": False, "reason": "not registered"}]
    else:
        chosen = [w for w in workers if w.get("host") == host]
        if not chosen:
            return False, [{"id": None, "healthy": False, "reason": f"no worker on {host}"}]
    now = time.time()
    reports = []
    for w in chosen:
        reason = judge(w, now=now, stall_s=stall_s, host=host)
        reports.append(
            {
                "id": w["id"],
                "healthy": reason is None,
                "reason": reason or "alive and ready",
                "state": w.get("state"),
                "job": w.get("job") or None,
            }
        )
    return all(r["healthy"] for r in reports), reports


class Readiness:
    """The checks behind `/healthz` and `/readyz` for a running worker."""

    def __init__(self, worker: Any, pulse: Pulse, stall_s: float) -> None:
        self.worker = worker
        self.pulse = pulse
        self.stall_s = stall_s
        self.ready = False

    def live(self) -> tuple[bool, dict[str, str]]:
        age = self.pulse.age()
        if self.ready and age > self.stall_s:
            return False, {"loop": f"silent for {age:.0f} s (stall timeout {self.stall_s:g} s)"}
        return True, {"loop": f"ticked {age:.1f} s ago"}

    def check(self) -> tuple[bool, dict[str, str]]:
        w = self.worker
        out: dict[str, str] = {}
        out["processors"] = "loaded" if self.ready else "not ready: starting up"
        out["shutdown"] = "stopping" if w.stopping else "ok"
        out["redis"] = _probe(w.client.ping)
        out["database"] = _probe(lambda: _select_one(w.store.engine))
        executor = w.executor
        alive = getattr(executor, "alive", None)
        if alive is None or alive():
            out["executor"] = "ok"
        elif getattr(executor, "restarts", 0):
            out["executor"] = "ok (replaced; the next job starts a fresh one)"
        else:
            out["executor"] = "down"
        ok = (
            self.ready
            and not w.stopping
            and all(
                v.startswith("ok") for k, v in out.items() if k not in ("processors", "shutdown")
            )
        )
        live_ok, live = self.live()
        return ok and live_ok, out | live


def _select_one(engine: Any) -> None:
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _probe(fn: Callable[[], Any]) -> str:
    try:
        fn()
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}: {str(exc)[:200]}"
