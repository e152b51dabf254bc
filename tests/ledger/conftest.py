"""Ledger fixtures: a PostgreSQL server for the Redis-loss proof (skips when not installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.db.conftest import PostgresServer, launch_postgres


@pytest.fixture(scope="module")
def ledger_postgres() -> Iterator[PostgresServer]:
    yield from launch_postgres(prefix="stoker-ledger-pg-")
