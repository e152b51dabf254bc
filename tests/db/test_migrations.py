"""Alembic migrations: head matches the models exactly, upgrades keep data, and are safe to race."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, insert, inspect, select

from models import Attempt, Base, FrameResult, Job
from models.migrate import alembic_config, downgrade, upgrade
from tests.support import ROOT
from worker.store import make_engine

jobs, attempts, frames = Job.__table__, Attempt.__table__, FrameResult.__table__
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def head(engine: Engine) -> str:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head() or ""


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def insert_sample(engine: Engine) -> None:
    """One job with two attempts and two frame rows, written with the 0001 columns."""
    with engine.begin() as conn:
        conn.execute(
            insert(jobs).values(
                id="old-1", queue="default", processor="echo", params={"text": "é", "n": [1]},
                status="succeeded", attempts=2, result={"ok": True}, queued_at=T0, updated_at=T0,
            )
        )  # fmt: skip
        conn.execute(
            insert(attempts),
            [
                {"job_id": "old-1", "number": 1, "outcome": "error", "error": "boom"},
                {"job_id": "old-1", "number": 2, "outcome": "succeeded", "error": None},
            ],
        )
        conn.execute(
            insert(frames),
            [
                {"job_id": "old-1", "frame_index": i, "timestamp": i / 25, "values": {"m": i}}
                for i in range(2)
            ],
        )


def assert_sample_intact(engine: Engine) -> None:
    with engine.connect() as conn:
        job = conn.execute(select(jobs).where(jobs.c.id == "old-1")).mappings().one()
        numbers = conn.execute(select(attempts.c.number).order_by(attempts.c.id)).scalars().all()
        frame_values = conn.execute(select(frames.c["values"]).order_by(frames.c.frame_index))
        assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 2, {"ok": True})
        assert job["params"] == {"text": "é", "n": [1]}
        assert job["queued_at"] == T0
        assert numbers == [1, 2]
        assert frame_values.scalars().all() == [{"m": 0}, {"m": 1}]


def test_there_is_a_single_linear_history() -> None:
    script = ScriptDirectory(str(ROOT / "models" / "migrations"))
    assert len(script.get_heads()) == 1
    assert [r.revision for r in script.walk_revisions()][-1] == "0001"


def test_upgrade_from_empty_matches_the_models_exactly(engine: Engine) -> None:
    upgrade(engine)
    assert current(engine) == head(engine)
    assert schema_diff(engine) == []


def test_upgrade_creates_the_three_tables(engine: Engine) -> None:
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert tables == {"alembic_version", "jobs", "attempts", "frame_results"}


def test_upgrading_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    insert_sample(engine)
    upgrade(engine)
    assert current(engine) == head(engine)
    assert schema_diff(engine) == []
    assert_sample_intact(engine)


def test_downgrade_to_base_then_upgrade_round_trips(engine: Engine) -> None:
    upgrade(engine)
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade(engine)
    assert schema_diff(engine) == []


def test_data_from_0001_survives_the_upgrade_to_head(engine: Engine) -> None:
    upgrade(engine, "0001")
    insert_sample(engine)
    upgrade(engine)
    assert current(engine) == head(engine)
    assert_sample_intact(engine)
    assert schema_diff(engine) == []


def test_data_survives_a_downgrade_to_0001_and_back(engine: Engine) -> None:
    upgrade(engine)
    insert_sample(engine)
    downgrade(engine, "0001")
    upgrade(engine)
    assert_sample_intact(engine)


def test_head_rejects_an_unknown_status(engine: Engine) -> None:
    upgrade(engine)
    with pytest.raises(Exception, match=r"(?i)check"), engine.begin() as conn:
        conn.execute(insert(jobs).values(id="x", status="bogus", attempts=0, updated_at=T0))


def test_concurrent_upgrades_from_two_processes_both_succeed(db_url: str) -> None:
    code = (
        "import sys; from worker.store import make_engine; from models.migrate import upgrade; "
        "upgrade(make_engine(sys.argv[1]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    eng = make_engine(db_url)
    try:
        assert current(eng) == head(eng)
        assert schema_diff(eng) == []
    finally:
        eng.dispose()
