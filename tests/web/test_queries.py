"""The operators' read queries: keyset pages, id search, jobs finished per minute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from worker.queries import BadCursor, JobFilter, Throughput, list_jobs
from worker.store import JobStore, jobs

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Any]:
    from tests.db.conftest import launch_postgres

    yield from launch_postgres("stoker-web-q-")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'q.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database("webq")
    store = JobStore(url)
    store.migrate()
    rows = [
        {
            "id": f"job-{i:03d}",
            "queue": "a" if i % 2 else "b",
            "processor": "echo",
            "status": "succeeded" if i % 3 else "failed",
            "attempts": 1,
            "queued_at": T0 + timedelta(seconds=i // 2),  # pairs share a time: ties by id
            "finished_at": T0 + timedelta(minutes=i % 5),
            "updated_at": T0,
        }
        for i in range(60)
    ]
    rows += [
        {
            "id": f"early-{i}",
            "queue": None,
            "processor": None,
            "status": "failed",
            "attempts": 0,
            "queued_at": None,
            "finished_at": None,
            "updated_at": T0,
        }
        for i in range(3)
    ]  # rejected before they ran: no queued_at
    with store.engine.begin() as conn:
        conn.execute(insert(jobs), rows)
    yield store.engine
    store.close()


def all_pages(engine: Engine, flt: JobFilter, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = list_jobs(engine, flt, limit=limit, cursor=cursor)
        pages.append([r["id"] for r in page.rows])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_pages_list_every_job_once_newest_first(engine: Engine) -> None:
    ids = [i for page in all_pages(engine, JobFilter(), 7) for i in page]
    newest = [f"job-{i:03d}" for i in range(59, -1, -1)]
    assert ids == [*newest, "early-2", "early-1", "early-0"]


def test_a_status_filter_pages_only_that_status(engine: Engine) -> None:
    ids = [i for page in all_pages(engine, JobFilter(status="failed"), 4) for i in page]
    want = [f"job-{i:03d}" for i in range(59, -1, -1) if i % 3 == 0]
    assert ids == [*want, "early-2", "early-1", "early-0"]


def test_a_queue_filter_pages_only_that_queue(engine: Engine) -> None:
    ids = [i for page in all_pages(engine, JobFilter(queue="a"), 5) for i in page]
    assert ids == [f"job-{i:03d}" for i in range(59, -1, -1) if i % 2]


def test_search_lists_ids_with_that_prefix_in_id_order(engine: Engine) -> None:
    pages = all_pages(engine, JobFilter(search="job-05"), 4)
    assert pages == [
        [f"job-05{i}" for i in range(4)],
        [f"job-05{i}" for i in range(4, 8)],
        ["job-058", "job-059"],
    ]


def test_search_treats_like_wildcards_literally(engine: Engine) -> None:
    assert list_jobs(engine, JobFilter(search="job_0")).rows == []
    assert list_jobs(engine, JobFilter(search="%")).rows == []


def test_a_forged_cursor_is_refused(engine: Engine) -> None:
    with pytest.raises(BadCursor):
        list_jobs(engine, JobFilter(), cursor="not-a-cursor")


def test_jobs_finished_per_minute_counts_each_minute(engine: Engine) -> None:
    rows = Throughput(engine, minutes=10).per_minute(now=T0 + timedelta(minutes=4, seconds=30))
    counts = dict(rows)
    assert [counts[T0 + timedelta(minutes=m)] for m in range(5)] == [12, 12, 12, 12, 12]
    assert len(rows) == 10 and rows[-1][0] == T0 + timedelta(minutes=4)


def test_finished_minutes_are_counted_once_and_then_remembered(engine: Engine) -> None:
    tp = Throughput(engine, minutes=10)
    now = T0 + timedelta(minutes=6)
    tp.per_minute(now=now)
    with engine.begin() as conn:  # a row in an already-counted minute is not seen again
        conn.execute(
            insert(jobs).values(
                id="late",
                status="succeeded",
                attempts=1,
                finished_at=T0 + timedelta(minutes=1),
                updated_at=T0,
            )
        )
    assert dict(tp.per_minute(now=now))[T0 + timedelta(minutes=1)] == 12
