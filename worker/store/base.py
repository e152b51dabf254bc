"""The store's contract, in one class: what every backend (SQLite, PostgreSQL) must do.

`JobStore` = `Writes` + `Reads` over this base; `tests/db/test_store.py` runs the same spec
against both backends. The rules every method keeps:

- One long-lived connection per store (per thread: the worker's loop and its writer each
  have their own); each method is one short transaction (`transaction`), and any error
  drops the connection, so the next call starts clean after an outage (`reset`).
- Writes are idempotent under redelivery: no write ever overwrites a recorded success,
  and only `cancel` and a success end a job that is cancelled or succeeded.
- Statuses are `worker.lifecycle.JobStatus`; times are UTC; JSON is what both backends
  accept (`encoding.dumps_json`).

Writes (`writes.Writes`): `enqueued` (a queued row, before the push), `write_batch` (the
group commit of starts and successes), `finish` (any other outcome), `failed_early` (a
job rejected before it ran), `lost` (recovered from a dead worker), `progress`,
`save_rows` (rows a job emitted), `cancel`, `status_of` (the hot-path guard read).
Reads (`reads.Reads`): `get`, `attempts`, `result`, `frame_rows`, `status_counts`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from worker.store.encoding import make_engine


class StoreBase:
    """Connection handling shared by the store's writes and reads."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._conn: Connection | None = None
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic); never drops data."""
        from models.migrate import upgrade

        upgrade(self.engine)

    @property
    def conn(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction on this store's connection; after any error the connection is
        dropped (the next call opens a new one) and the error raised."""
        try:
            with self.conn.begin():
                yield self.conn
        except Exception:
            self.reset()
            raise

    def _run(self, *statements: Any) -> list[Any]:
        with self.transaction() as conn:
            return [conn.execute(s) for s in statements]

    def reset(self) -> None:
        """Drop the connection (after an error); the next call opens a new one."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self.reset()
        self.engine.dispose()
