"""An idle worker on several queues waits on all of them at once, without polling.

BLMOVE watches one list. So a worker with several queues keeps one connection per queue
and, when it goes idle, sends on each a BLMOVE into its landing list with the `land`
script right behind it (as `Broker.block_fetch` does for one queue): a push to any of
its queues is taken into flight and claimed in one round trip, as with one queue.

Rules:
- The first wait to answer wins (the highest-priority one when several answer at once).
  `settle` cancels the others (CLIENT UNBLOCK, on the winner's connection) and reads
  what they answered once the won job has been handed to the executor, so the cancel
  costs that job no time.
- A job another wait took meanwhile (pushes to two queues at the same moment) goes back
  to the front of its queue, its delivery counted back: the next fetch takes the jobs in
  priority order.
- An UNBLOCK that finds its client not blocked yet (its BLMOVE still on the way) is sent
  again until that wait has answered.
- Any error drops every connection and calls `on_lost`: a job a dropped wait moved but
  never claimed stays in this worker's landing list, where
  `Prefetcher.reclaim_orphans` finds it between jobs.
- Where Redis refuses CLIENT (an ACL, a managed server) or the client has no sockets
  (fakeredis), `open` says so and the worker waits on keyspace notifications instead
  (`worker.wakeup`); it tries again after `RETRY_S`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import redis
import structlog

from worker.broker import Broker, Delivery

log = structlog.get_logger("stoker.blockers")

#: Seconds before a refused `open` is tried again.
RETRY_S = 30.0
#: How long `settle` waits for a cancelled wait's answer before sending UNBLOCK again.
UNBLOCK_WAIT_S = 0.005
#: Seconds past its own timeout a wait may take to answer before it counts as lost.
GRACE_S = 2.0


class Unsupported(Exception):
    """This client or server cannot wait on several queues at once."""


class Blockers:
    """One blocking wait per queue, on a connection of its own (see the module rules)."""

    def __init__(self, broker: Broker, queues: list[str], *, on_lost: Callable[[], None]) -> None:
        self.broker = broker
        self.queues = queues
        self.on_lost = on_lost
        self._conns: dict[str, Any] = {}
        self._ids: dict[str, int] = {}
        self._lands: dict[str, tuple[Any, ...]] = {}
        self._pending: list[str] = []
        """Queues whose wait has not been read yet (cancelled, or still blocked)."""
        self._control: Any = None
        """The winner's connection: it carries the UNBLOCKs of the others."""
        self._base = ""
        self._refused_at: float | None = None

    def open(self) -> bool:
        """Connect one client per queue; False where that cannot work (see the rules)."""
        if self._conns:
            return True
        if self._refused_at is not None and time.monotonic() - self._refused_at < RETRY_S:
            return False
        try:
            with _undone_by(self.close):
                for queue in self.queues:
                    conn = self.broker.client.connection_pool.make_connection()
                    self._conns[queue] = conn
                    conn.connect()
                    if not isinstance(getattr(conn, "_sock", None), socket.socket):
                        raise Unsupported("the client has no socket to wait on")
                    conn.send_command("CLIENT", "ID")
                    self._ids[queue] = client_id = int(conn.read_response())
                    conn.send_command("CLIENT", "UNBLOCK", client_id)  # is it allowed?
                    conn.read_response()
        except (Unsupported, redis.ResponseError) as exc:
            log.warning("waiting on several queues unavailable", error=str(exc)[:200])
            self._refused_at = time.monotonic()
            self.close()  # Unsupported is no Redis error: `_undone_by` left it open
            return False
        return True

    def wait(self, timeout: float) -> Delivery | None:
        """Wait up to `timeout` s for a job on any queue; the job, taken into flight and
        claimed, or None. Call `settle` once the job has been handed on."""
        self.settle()
        if not self.open():  # reconnects after a loss
            return None
        with _undone_by(self._drop):
            self._base = base = uuid.uuid4().hex
            for queue, conn in self._conns.items():
                blmove, self._lands[queue] = self.broker.wait_commands(queue, timeout, base)
                conn.send_packed_command(conn.pack_commands([blmove, self._lands[queue]]))
            self._pending = list(self.queues)
            first = self._first_answer(timeout + GRACE_S)
            won = self._read(first)
            self._control = self._conns[first]
        if won is None:
            self.settle()
        return won

    @property
    def unsettled(self) -> bool:
        """Waits were cancelled (or are still blocked) and not read yet."""
        return bool(self._pending)

    def settle(self) -> None:
        """Read what the cancelled waits answered; hand back any job they took."""
        if not self._pending:
            return
        try:
            control = self._control
            control.send_packed_command(
                control.pack_commands([("CLIENT", "UNBLOCK", self._ids[q]) for q in self._pending])
            )
            for _ in self._pending:
                control.read_response()
            deadline = time.monotonic() + GRACE_S
            for queue in list(self._pending):
                conn = self._conns[queue]
                while not _readable(conn, UNBLOCK_WAIT_S):
                    if time.monotonic() > deadline:
                        raise redis.TimeoutError(f"the wait on {queue!r} did not answer")
                    control.send_command("CLIENT", "UNBLOCK", self._ids[queue])
                    control.read_response()
                if (taken := self._read(queue)) is not None:
                    self.broker.release(taken)
        except (redis.RedisError, OSError) as exc:
            self._drop()
            log.warning("waits on the queues lost", error=str(exc)[:200])

    def close(self) -> None:
        """Drop every connection (a blocked wait ends with its connection)."""
        for conn in self._conns.values():
            with contextlib.suppress(redis.RedisError, OSError):
                conn.disconnect()
        self._conns, self._ids, self._pending = {}, {}, []

    def _drop(self) -> None:
        self.close()
        self.on_lost()

    def _first_answer(self, timeout: float) -> str:
        """The queue whose wait answered first (by priority among those ready at once)."""
        socks = {self._conns[q]._sock: q for q in self._pending}
        ready, _, _ = select.select(list(socks), [], [], timeout)
        if not ready:
            raise redis.TimeoutError("no wait answered within its timeout")
        answered = {socks[s] for s in ready}
        return next(q for q in self._pending if q in answered)

    def _read(self, queue: str) -> Delivery | None:
        """Read one wait's BLMOVE and `land` replies: the job `land` took, if any."""
        conn = self._conns[queue]
        conn.read_response()  # the job moved (or None): `land` answers for it
        try:
            res = conn.read_response()
        except redis.exceptions.NoScriptError:  # Redis restarted or flushed meanwhile
            conn.send_command(*self.broker.reloaded(self._lands[queue]))
            res = conn.read_response()
        self._pending.remove(queue)
        return self.broker.landed(res, queue, self._base)


def _readable(conn: Any, timeout: float) -> bool:
    return bool(conn.can_read(timeout=timeout))


@contextlib.contextmanager
def _undone_by(cleanup: Callable[[], None]) -> Iterator[None]:
    """On any Redis or socket error, run `cleanup` and raise: Redis errors as they are,
    socket errors as the connection error the worker retries."""
    try:
        yield
    except redis.RedisError:
        cleanup()
        raise
    except OSError as exc:
        cleanup()
        raise redis.ConnectionError(f"a wait on the queues was lost: {exc}") from exc
