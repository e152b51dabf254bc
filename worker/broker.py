"""The Redis side of the queue: every state change goes through `stoker.lua`.

A job never exists only in a worker's memory: `fetch` moves it atomically from its queue
to the worker's in-flight list, and it leaves that list only through `ack`, `schedule`,
`fail` or `requeue_front`, each one atomic with the matching bookkeeping.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis

from worker.failed import encode_entry, read_entry
from worker.keys import Keys

_SCRIPT = resources.files("worker").joinpath("stoker.lua").read_text()

try:  # redis-py's own packer wraps this one in a per-argument Python loop
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - hiredis comes with redis[hiredis]
    _pack = None


@dataclass
class Delivery:
    """A job taken from a queue and held in this worker's in-flight list."""

    raw: bytes
    queue: str
    inflight_key: str
    duplicate_of: str | None
    """Set when another worker is already running a job with the same id."""
    deliveries: int
    counted: bool = True
    """False for a prefetched job: its delivery is counted when it starts."""
    named: bool = False
    """The payload had no id: this fetch named it (so no row of it can exist yet)."""


@dataclass
class FetchResult:
    delivery: Delivery | None
    next_due: float | None
    """Score of the earliest scheduled job when nothing was ready."""
    batch: list[Delivery] = field(default_factory=list)
    """Every job taken (the first one, then the rest of its batch); empty when none."""


class Broker:
    """Queue operations for one worker (or a CLI). Not thread-safe: one per thread."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        worker_id: str = "cli",
        *,
        max_payload_bytes: int = 1_048_576,
        failed_max: int = 0,
    ) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self.max_payload_bytes = max_payload_bytes
        """Longer payloads are never decoded inside Redis (they carry no id there)."""
        self.failed_max = failed_max
        """The failed list keeps at most this many entries, oldest dropped (0: no cap)."""
        self._script = client.register_script(_SCRIPT)
        self._conn: Any = None
        self._pending: tuple[list[str], tuple[Any, ...]] | None = None
        self._prefetched: FetchResult | None = None
        self._fetch_keys: dict[tuple[str, ...], list[str]] = {}
        self.batch_sizes: dict[str, int] = {}
        """Processors that batch, and their most jobs per batch (the worker sets it)."""
        self.queue_processors: dict[str, str] = {}
        """Each queue's default processor, for bare payloads (the worker sets it)."""

    def _call(self, keys: list[str], *args: Any) -> Any:
        """Run the script (`stoker.lua`) with `keys` and `args`."""
        return self._command(*self._script_command(keys, args))

    def _script_command(self, keys: list[str], args: tuple[Any, ...]) -> tuple[Any, ...]:
        return ("EVALSHA", self._script.sha, len(keys), *keys, *args)

    def _command(self, *command: Any) -> Any:
        """Run one command on this broker's own connection.

        The per-job calls skip the client's generic path (pool checkout, retry wrapper,
        callbacks): it costs as much CPU as Redis's own work. And nothing is retried
        silently: a lost connection is dropped and the error raised, so the worker knows
        a reply may have been lost (see `Worker.reclaim_orphans`).
        """
        self._collect()
        self._send(command)
        return self._read(command)

    def _send(self, command: tuple[Any, ...]) -> None:
        if self._conn is None:
            self._conn = self.client.connection_pool.make_connection()
        try:
            if _pack is not None:
                self._conn.send_packed_command([_pack(command)])
            else:
                self._conn.send_command(*command)
        except BaseException:
            self._conn.disconnect()
            raise

    def _read(self, command: tuple[Any, ...]) -> Any:
        conn = self._conn
        try:
            try:
                return conn.read_response()
            except redis.exceptions.NoScriptError:  # a restarted or flushed Redis
                self._send(self.reloaded(command))
                return conn.read_response()
        except redis.ResponseError:
            raise
        except BaseException:
            conn.disconnect()
            raise

    def reloaded(self, command: tuple[Any, ...]) -> tuple[Any, ...]:
        """An EVALSHA `command` again, the script loaded anew (Redis answered NOSCRIPT:
        it restarted or was flushed)."""
        self._script.sha = self.client.script_load(_SCRIPT)
        return (command[0], self._script.sha, *command[2:])

    def close(self) -> None:
        self._pending = None
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None

    # Producer side
    def enqueue(self, queue: str, payload: str, *, run_at: float | None = None) -> None:
        if run_at and run_at > time.time():
            self.client.zadd(self.keys.scheduled, {f"{self.keys.queue(queue)}\n{payload}": run_at})
        else:
            self.client.lpush(self.keys.queue(queue), payload)

    # Worker side
    def fetch(
        self,
        queues: list[str],
        *,
        promote_limit: int = 100,
        prefetch: bool = False,
        started: list[str] | None = None,
    ) -> FetchResult:
        """Promote due scheduled jobs, then take the oldest job of the first non-empty queue
        (and, when its processor batches, the jobs of that processor right behind it).

        `prefetch`: the jobs are taken ahead of time, their deliveries not counted until
        they start; `started` names prefetched jobs that have started, counted now.
        """
        keys, args = self._fetch_call(queues, promote_limit, prefetch, started)
        return self._fetch_result(queues, self._call(keys, *args), prefetch, args[7])

    def prefetch(self, queues: list[str], *, started: list[str] | None = None) -> None:
        """Send a prefetching `fetch` without waiting for Redis's reply: the caller goes
        on with its work and picks the job up with `prefetched()`."""
        self._collect()
        command = self._script_command(*self._fetch_call(queues, 100, True, started))
        self._send(command)
        self._pending = (queues, command)

    def prefetched(self) -> FetchResult | None:
        """The result of the last `prefetch`; None when it failed (Redis unreachable)."""
        self._collect()
        result, self._prefetched = self._prefetched, None
        return result

    def _collect(self) -> None:
        # A prefetch's reply comes before any later call's on the same connection.
        if self._pending is None:
            return
        (queues, command), self._pending = self._pending, None
        base = command[3 + int(command[2]) + 7]  # EVALSHA sha numkeys *keys *args
        try:
            self._prefetched = self._fetch_result(queues, self._read(command), True, base)
        except redis.RedisError:
            self._prefetched = None

    def _fetch_call(
        self, queues: list[str], promote_limit: int, prefetch: bool, started: list[str] | None
    ) -> tuple[list[str], tuple[Any, ...]]:
        keys = self._fetch_keys.get(tuple(queues))
        if keys is None:
            keys = [self.keys.running, self.keys.deliveries, self.keys.scheduled]
            for q in queues:
                keys += [self.keys.queue(q), self.keys.inflight(self.worker_id, q)]
            self._fetch_keys[tuple(queues)] = keys
        args: tuple[Any, ...] = (
            "fetch",
            time.time(),
            self.worker_id,
            promote_limit,
            int(prefetch),
            "\n".join(started or ()),
            self.max_payload_bytes,
            uuid.uuid4().hex,
        )
        if self.batch_sizes:
            spec = "\n".join(f"{name}={size}" for name, size in self.batch_sizes.items())
            args += (spec, *(self.queue_processors.get(q, "") for q in queues))
        else:
            args += ("",)
        return keys, args

    def _fetch_result(self, queues: list[str], res: Any, prefetch: bool, base: str) -> FetchResult:
        if res[0] is None:  # an empty payload (b"") is a job too
            due = res[4] if len(res) > 4 and res[4] not in (b"", "") else None
            return FetchResult(None, float(due) if due is not None else None)
        queue = queues[int(res[1]) - 1]
        batch = [self._delivery(res[0], queue, res[2], res[3], not prefetch, base)]
        for i in range(5, len(res), 3):
            d = self._delivery(res[i], queue, res[i + 1], res[i + 2], not prefetch, base)
            batch.append(d)
        return FetchResult(batch[0], None, batch)

    def more(self, queue: str, processor: str, limit: int) -> list[Delivery]:
        """Up to `limit` more jobs of `processor` from the head of `queue` (a batch that
        waits for more: `WORKER_BATCH_WAIT_MS`), counted as delivered."""
        keys = [
            self.keys.running,
            self.keys.deliveries,
            self.keys.queue(queue),
            self.keys.inflight(self.worker_id, queue),
        ]
        base = uuid.uuid4().hex
        args = (self.worker_id, self.max_payload_bytes, base, processor)
        res = self._call(keys, "more", *args, self.queue_processors.get(queue, ""), limit)
        return [
            self._delivery(res[i], queue, res[i + 1], res[i + 2], True, base)
            for i in range(0, len(res), 3)
        ]

    def _delivery(
        self,
        raw: bytes,
        queue: str,
        holder: Any,
        count: Any,
        counted: bool = True,
        base: str = "",
    ) -> Delivery:
        return Delivery(
            raw=raw,
            queue=queue,
            inflight_key=self.keys.inflight(self.worker_id, queue),
            duplicate_of=_s(holder) or None,
            deliveries=int(count or 0),
            counted=counted,
            # stoker.lua's `new_id`: the base's first 28 digits, just after the brace.
            named=bool(base) and f'"id":"{base[:28]}'.encode() in raw[:64],
        )

    def block_fetch(self, queue: str, timeout: float) -> Delivery | None:
        """Wait up to `timeout` s for a job on `queue`, moving it atomically (BLMOVE) to
        this worker's landing list; the `land` script, sent right behind it on the same
        connection, runs the moment it returns and takes the job into flight (named,
        claimed), so the wait and the claim cost one round trip between them."""
        base = uuid.uuid4().hex
        wait, land = self.wait_commands(queue, timeout, base)
        self._collect()
        self._send(wait)
        self._send(land)
        self._read(wait)  # the job (or None): `land` answers for it
        return self.landed(self._read(land), queue, base)

    def wait_commands(
        self, queue: str, timeout: float, base: str
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The BLMOVE that waits up to `timeout` s for a job on `queue` (into this worker's
        landing list), and the `land` script to send right behind it (ids from `base`)."""
        landing = self.keys.landing(self.worker_id, queue)
        inflight = self.keys.inflight(self.worker_id, queue)
        keys = [landing, inflight, self.keys.running, self.keys.deliveries]
        land = self._script_command(keys, ("land", self.worker_id, self.max_payload_bytes, base))
        return ("BLMOVE", self.keys.queue(queue), landing, "RIGHT", "LEFT", timeout), land

    def landed(self, res: Any, queue: str, base: str) -> Delivery | None:
        """The delivery `land` answered (None: nothing landed)."""
        if res is None:
            return None
        return self._delivery(res[0], queue, res[1], res[2], True, base)

    def reclaim_landed(self, queue: str) -> int:
        """Hand back jobs left in this worker's landing list for `queue` (a wait whose
        `land` never ran: its connection was lost) to the front of the queue. Landed
        jobs are not yet claimed or counted: moving them back is all there is to it."""
        landing, n = self.keys.landing(self.worker_id, queue), 0
        while self._command("LMOVE", landing, self.keys.queue(queue), "RIGHT", "RIGHT"):
            n += 1
        return n

    def rewrite(self, delivery: Delivery, payload: str) -> Delivery:
        """Replace an id-less in-flight payload with its normalized form (which has an id)."""
        holder, count = self._call(
            [delivery.inflight_key, self.keys.running, self.keys.deliveries],
            "rewrite",
            delivery.raw,
            payload,
            self.worker_id,
            self.max_payload_bytes,
        )
        delivery.raw = payload.encode()
        delivery.duplicate_of = _s(holder) or None
        delivery.deliveries = int(count or 0)
        delivery.counted = True
        return delivery

    def release(self, delivery: Delivery) -> None:
        """Hand a job that never started (prefetched, or landed by a losing wait) back to
        the front of its queue, its delivery uncounted."""
        keys = [
            delivery.inflight_key,
            self.keys.running,
            self.keys.deliveries,
            self.keys.queue(delivery.queue),
        ]
        # A duplicate was never claimed: the running mark is someone else's (or this
        # worker's, for the job it is running now).
        claimant = "" if delivery.duplicate_of else self.worker_id
        uncount = int(delivery.counted and not delivery.duplicate_of)
        self._call(keys, "release", delivery.raw, claimant, self.max_payload_bytes, uncount)

    def ack(self, delivery: Delivery, job_id: str | None) -> None:
        """Take a job whose outcome is recorded out of flight."""
        self.ack_many([(delivery, job_id)])

    def ack_many(self, acks: list[tuple[Delivery, str | None]]) -> None:
        """Take several jobs whose outcomes are recorded out of flight, in one call."""
        keys = [self.keys.running, self.keys.deliveries, self.keys.cancel]
        args: list[Any] = ["ack"]
        for delivery, job_id in acks:
            if delivery.inflight_key not in keys:
                keys.append(delivery.inflight_key)
            args += [keys.index(delivery.inflight_key) + 1, delivery.raw, job_id or ""]
        self._call(keys, *args)

    def drop_duplicate(self, delivery: Delivery) -> None:
        self._call([delivery.inflight_key], "drop", delivery.raw)

    def schedule(self, delivery: Delivery, job_id: str, payload: str, due: float) -> bool:
        """Take the job out of flight and into the scheduled set, due at `due` (epoch s).

        False when its cancellation was asked meanwhile: it left flight, not scheduled.
        """
        member = f"{self.keys.queue(delivery.queue)}\n{payload}"
        keys = [delivery.inflight_key, self.keys.running, self.keys.deliveries]
        keys += [self.keys.scheduled, self.keys.cancel]
        return self._call(keys, "schedule", delivery.raw, job_id, due, member) != 2

    def fail(self, delivery: Delivery, job_id: str | None, entry: dict[str, Any]) -> None:
        """Move the job from flight to the failed list as `entry`."""
        keys = [delivery.inflight_key, self.keys.running, self.keys.deliveries, self.keys.failed]
        keys.append(self.keys.cancel)
        args = (delivery.raw, job_id or "", encode_entry(entry), self.failed_max)
        self._call(keys, "fail", *args, self.max_payload_bytes)

    def requeue_front(self, delivery: Delivery, job_id: str, payload: str) -> bool:
        """Put the job back at the front of its queue (graceful shutdown), no attempt charged.

        False when its cancellation was asked meanwhile: it left flight, not requeued.
        """
        keys = [delivery.inflight_key, self.keys.running, self.keys.deliveries]
        keys += [self.keys.queue(delivery.queue), self.keys.cancel]
        return self._call(keys, "requeue_front", delivery.raw, job_id, payload) != 2

    def cancel_running(self, job_id: str) -> str | None:
        """Ask the worker running (or holding) `job_id` to stop it; its id, or None."""
        holder = self._call([self.keys.running, self.keys.cancel], "cancel", job_id)
        return _s(holder) if holder else None

    def job_id(self, raw: bytes | str) -> str | None:
        """The id Redis's side sees in a payload (the rule of `protocol.job_id_of`)."""
        return _s(self._call([], "id", raw, self.max_payload_bytes)) or None

    def unlock(self, key: str, token: str) -> bool:
        """Delete the lock `key` only while `token` still holds it."""
        return bool(self._call([key], "unlock", token))

    # Failed list
    def failed_entries(self) -> list[tuple[bytes, dict[str, Any]]]:
        return [(raw, read_entry(raw)) for raw in self.client.lrange(self.keys.failed, 0, -1)]

    def requeue_failed(self, raw_entry: bytes, queue: str, payload: str) -> bool:
        keys = [self.keys.failed, self.keys.queue(queue)]
        return bool(self._call(keys, "requeue_failed", raw_entry, payload))

    # Workers and recovery
    def recover(
        self, dead_worker: str, queues: list[str], max_deliveries: int, failed_at: str
    ) -> tuple[list[str], list[str], list[str]]:
        """Return a dead worker's in-flight jobs to their queues (poison pills to failed).

        Returns the ids recovered, poisoned, and cancelled (asked to stop: not requeued).
        """
        keys = [
            self.keys.running,
            self.keys.deliveries,
            self.keys.failed,
            self.keys.heartbeat(dead_worker),
            self.keys.worker(dead_worker),
            self.keys.workers,
            self.keys.cancel,
        ]
        for q in queues:
            keys += [self.keys.inflight(dead_worker, q), self.keys.queue(q)]
            keys.append(self.keys.landing(dead_worker, q))
        args = (dead_worker, max_deliveries, failed_at, self.max_payload_bytes, self.failed_max)
        recovered, poisoned, cancelled = self._call(keys, "recover", *args, *queues)
        return [_s(x) for x in recovered], [_s(x) for x in poisoned], [_s(x) for x in cancelled]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
