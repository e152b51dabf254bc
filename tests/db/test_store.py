"""Specification of `JobStore`, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from worker.outcome import Outcome
from worker.protocol import Job
from worker.store import JobStore

Q = "default"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(migrated_db_url: str) -> Iterator[JobStore]:
    s = JobStore(migrated_db_url)
    s.migrate()  # already at head: a no-op
    yield s
    s.close()


def spec(job_id: str = "j1", **kw: Any) -> Job:
    kw.setdefault("processor", "echo")
    kw.setdefault("params", {"text": "hi"})
    kw.setdefault("queued_at", T0)
    return Job(id=job_id, **kw)


def ok(result: Any = None, duration: float = 0.5) -> Outcome:
    return Outcome("succeeded", result=result, duration=duration)


def err(kind: Any = "error", message: str = "boom", **kw: Any) -> Outcome:
    return Outcome(kind, error_type="RuntimeError", message=message, duration=0.25, **kw)


def run(store: JobStore, job: Job, worker: str = "w1") -> datetime:
    """Start `job` (which must be allowed to run); returns its start time."""
    started = datetime.now(UTC)
    assert store.start(job, Q, worker, started) == "run"
    return started


def finish(
    store: JobStore, job: Job, outcome: Outcome, status: Any, started: datetime, **kw: Any
) -> None:
    store.finish(
        job.id,
        attempt=job.attempts + 1,
        worker_id="w1",
        outcome=outcome,
        status=status,
        started_at=started,
        **kw,
    )


def row(store: JobStore, job_id: str = "j1") -> dict[str, Any]:
    got = store.get(job_id)
    assert got is not None
    return got


# The status machine


def test_enqueued_records_a_queued_row(store: JobStore) -> None:
    store.enqueued(spec(max_attempts=3), Q)
    r = row(store)
    assert (r["status"], r["queue"], r["processor"], r["attempts"]) == ("queued", Q, "echo", 0)
    assert r["params"] == {"text": "hi"}
    assert r["max_attempts"] == 3
    assert r["queued_at"] == T0.isoformat()


def test_start_marks_a_queued_job_running_as_attempt_one(store: JobStore) -> None:
    store.enqueued(spec(), Q)
    run(store, spec(), worker="w7")
    r = row(store)
    assert (r["status"], r["attempts"], r["worker_id"], r["progress"]) == ("running", 1, "w7", 0)
    assert r["queued_at"] == T0.isoformat()


def test_start_creates_the_row_of_a_job_pushed_straight_to_redis(store: JobStore) -> None:
    run(store, spec("raw"))
    assert row(store, "raw")["status"] == "running"


def test_success_records_the_result_and_finish_time(store: JobStore) -> None:
    started = run(store, spec())
    finish(store, spec(), ok({"echo": "hi"}), "succeeded", started)
    r = row(store)
    assert (r["status"], r["result"], r["progress"]) == ("succeeded", {"echo": "hi"}, 1.0)
    assert r["finished_at"] is not None
    assert r["error"] is None
    assert store.result("j1") == {"echo": "hi"}


def test_retrying_then_running_then_failed(store: JobStore) -> None:
    job = spec(max_attempts=2)
    started = run(store, job)
    due = T0 + timedelta(seconds=30)
    finish(store, job, err(message="first"), "retrying", started, run_at=due)
    r = row(store)
    assert (r["status"], r["attempts"], r["error"]) == ("retrying", 1, "first")
    assert r["run_at"] == due.isoformat()
    assert r["finished_at"] is None

    retry = job.model_copy(update={"attempts": 1})
    started = run(store, retry)
    assert (row(store)["status"], row(store)["attempts"]) == ("running", 2)
    finish(store, retry, err("timeout", message="second"), "failed", started)
    r = row(store)
    assert (r["status"], r["attempts"], r["error"], r["error_type"]) == (
        "failed",
        2,
        "second",
        "RuntimeError",
    )
    assert r["finished_at"] is not None
    assert r["run_at"] is None


def test_a_retry_that_succeeds_clears_the_error(store: JobStore) -> None:
    job = spec()
    finish(store, job, err(), "retrying", run(store, job), run_at=T0)
    retry = job.model_copy(update={"attempts": 1})
    finish(store, retry, ok(1), "succeeded", run(store, retry))
    r = row(store)
    assert (r["status"], r["attempts"], r["error"], r["error_type"], r["run_at"]) == (
        "succeeded",
        2,
        None,
        None,
        None,
    )


def test_cancel_stops_a_queued_job(store: JobStore) -> None:
    store.enqueued(spec(), Q)
    store.cancel("j1")
    r = row(store)
    assert r["status"] == "cancelled"
    assert r["finished_at"] is not None


def test_cancel_leaves_a_finished_job_alone(store: JobStore) -> None:
    finish(store, spec(), ok(1), "succeeded", run(store, spec()))
    store.cancel("j1")
    assert row(store)["status"] == "succeeded"


def test_a_job_cancelled_while_running_is_finished_as_cancelled(store: JobStore) -> None:
    started = run(store, spec())
    finish(store, spec(), Outcome("interrupted", duration=0.1), "cancelled", started)
    r = row(store)
    assert r["status"] == "cancelled"
    assert r["finished_at"] is not None


def test_an_interrupted_attempt_is_not_charged(store: JobStore) -> None:
    started = run(store, spec())
    finish(store, spec(), Outcome("interrupted", duration=0.1), "queued", started)
    r = row(store)
    assert (r["status"], r["attempts"]) == ("queued", 0)
    assert [a["outcome"] for a in store.attempts("j1")] == ["interrupted"]


# Idempotency under redelivery


def test_start_refuses_a_job_whose_success_is_recorded(store: JobStore) -> None:
    finish(store, spec(), ok({"n": 1}), "succeeded", run(store, spec()))
    before = row(store)
    assert store.start(spec(), Q, "w2", datetime.now(UTC)) == "succeeded"
    assert row(store) == before


def test_start_refuses_a_cancelled_job(store: JobStore) -> None:
    store.enqueued(spec(), Q)
    store.cancel("j1")
    assert store.start(spec(), Q, "w2", datetime.now(UTC)) == "cancelled"
    assert row(store)["status"] == "cancelled"


def test_start_reruns_a_job_that_failed(store: JobStore) -> None:
    finish(store, spec(), err(), "failed", run(store, spec()))
    assert store.start(spec(), Q, "w2", datetime.now(UTC)) == "run"


def test_a_late_failure_does_not_overwrite_a_recorded_success(store: JobStore) -> None:
    started = run(store, spec())
    finish(store, spec(), ok("first"), "succeeded", started)
    finish(store, spec(), err(), "failed", started)
    r = row(store)
    assert (r["status"], r["result"]) == ("succeeded", "first")
    assert [a["outcome"] for a in store.attempts("j1")] == ["succeeded", "error"]


def test_a_late_retry_does_not_undo_a_cancellation(store: JobStore) -> None:
    started = run(store, spec())
    store.cancel("j1")
    finish(store, spec(), err(), "retrying", started, run_at=T0)
    assert row(store)["status"] == "cancelled"


# Attempts history


def test_each_attempt_is_recorded_with_its_outcome(store: JobStore) -> None:
    job = spec()
    started = run(store, job, worker="w1")
    finish(store, job, err("crashed", message="SIGKILL", traceback="tb"), "retrying", started)
    retry = job.model_copy(update={"attempts": 1})
    finish(store, retry, ok(2, duration=1.5), "succeeded", run(store, retry, worker="w2"))
    history = store.attempts("j1")
    assert [(a["number"], a["outcome"]) for a in history] == [(1, "crashed"), (2, "succeeded")]
    first, second = history
    assert (first["error_type"], first["error"], first["traceback"]) == (
        "RuntimeError",
        "SIGKILL",
        "tb",
    )
    assert (first["worker_id"], first["duration"]) == ("w1", 0.25)
    assert (second["error"], second["duration"]) == (None, 1.5)
    assert first["started_at"] <= first["finished_at"]


def test_attempts_of_an_unknown_job_are_empty(store: JobStore) -> None:
    assert store.attempts("nope") == []


# Rejected before running


def test_failed_early_creates_a_failed_row_with_the_reason(store: JobStore) -> None:
    data = {"id": "bad", "processor": "no_such", "params": {"x": 1}}
    store.failed_early(
        "bad", queue=Q, reason="unknown processor", error_type="UnknownProcessor",
        data=data, worker_id="w1",
    )  # fmt: skip
    r = row(store, "bad")
    assert (r["status"], r["error"], r["error_type"]) == (
        "failed",
        "unknown processor",
        "UnknownProcessor",
    )
    assert (r["processor"], r["params"], r["attempts"]) == ("no_such", {"x": 1}, 0)
    assert r["finished_at"] is not None


def test_failed_early_keeps_a_payload_that_is_not_an_object(store: JobStore) -> None:
    store.failed_early(
        "bad", queue=Q, reason="not an object", error_type="BadPayload", data=[1], worker_id=None
    )
    assert (row(store, "bad")["processor"], row(store, "bad")["params"]) == (None, None)


def test_failed_early_does_not_overwrite_a_success(store: JobStore) -> None:
    finish(store, spec(), ok(1), "succeeded", run(store, spec()))
    store.failed_early(
        "j1", queue=Q, reason="dup", error_type="BadPayload", data={}, worker_id="w1"
    )
    assert row(store)["status"] == "succeeded"


def test_failed_early_skips_an_id_too_long_for_the_column(store: JobStore) -> None:
    long_id = "x" * 500
    store.failed_early(
        long_id, queue=Q, reason="bad", error_type="BadPayload", data={}, worker_id="w1"
    )
    assert store.get(long_id) is None


def test_failed_early_truncates_an_overlong_processor_name(store: JobStore) -> None:
    store.failed_early(
        "bad", queue=Q, reason="r", error_type="BadPayload",
        data={"processor": "p" * 300}, worker_id="w1",
    )  # fmt: skip
    assert row(store, "bad")["processor"] == "p" * 128


# Lost workers


def test_lost_requeues_the_job_with_a_lost_attempt(store: JobStore) -> None:
    run(store, spec())
    store.lost("j1", worker_id="dead", poisoned=False)
    r = row(store)
    assert (r["status"], r["error_type"]) == ("queued", "WorkerLost")
    assert "dead" in r["error"]
    assert [(a["number"], a["outcome"], a["worker_id"]) for a in store.attempts("j1")] == [
        (1, "lost", "dead")
    ]


def test_lost_fails_a_poison_pill(store: JobStore) -> None:
    run(store, spec())
    store.lost("j1", worker_id="dead", poisoned=True)
    r = row(store)
    assert (r["status"], r["error_type"]) == ("failed", "PoisonPill")
    assert r["finished_at"] is not None


def test_lost_leaves_a_succeeded_job_alone(store: JobStore) -> None:
    finish(store, spec(), ok(1), "succeeded", run(store, spec()))
    store.lost("j1", worker_id="dead", poisoned=False)
    assert row(store)["status"] == "succeeded"
    assert [a["outcome"] for a in store.attempts("j1")] == ["succeeded"]


def test_lost_records_a_job_whose_running_mark_was_never_written(store: JobStore) -> None:
    # A worker can die between taking a job and committing its `running` mark.
    store.lost("early", worker_id="dead", poisoned=True)
    row = store.get("early")
    assert row is not None and row["status"] == "failed" and row["error_type"] == "PoisonPill"
    assert [a["outcome"] for a in store.attempts("early")] == ["lost"]


# Progress and rows


def test_progress_records_fraction_and_stage(store: JobStore) -> None:
    run(store, spec())
    store.progress("j1", 0.4, "decode")
    r = row(store)
    assert (r["progress"], r["stage"]) == (0.4, "decode")


def test_progress_truncates_an_overlong_stage(store: JobStore) -> None:
    run(store, spec())
    store.progress("j1", 0.5, "s" * 100)
    assert row(store)["stage"] == "s" * 64


def frames(*indexes: int, tag: str = "a") -> list[dict[str, Any]]:
    return [{"frame_index": i, "timestamp": i / 25, "values": {"tag": tag}} for i in indexes]


def test_save_rows_appends_within_an_attempt(store: JobStore) -> None:
    run(store, spec())
    store.save_rows("j1", "frame_results", frames(0, 1), first=True)
    store.save_rows("j1", "frame_results", frames(2), first=False)
    assert [r["frame_index"] for r in store.frame_rows("j1")] == [0, 1, 2]


def test_save_rows_first_replaces_rows_of_an_earlier_attempt(store: JobStore) -> None:
    run(store, spec())
    store.save_rows("j1", "frame_results", frames(0, 1, 2, tag="old"), first=True)
    store.save_rows("j1", "frame_results", frames(0, 1, tag="new"), first=True)
    rows = store.frame_rows("j1")
    assert [(r["frame_index"], r["values"]) for r in rows] == [
        (0, {"tag": "new"}),
        (1, {"tag": "new"}),
    ]


def test_save_rows_of_nothing_first_clears_earlier_rows(store: JobStore) -> None:
    run(store, spec())
    store.save_rows("j1", "frame_results", frames(0), first=True)
    store.save_rows("j1", "frame_results", [], first=True)
    assert store.frame_rows("j1") == []


def test_save_rows_rejects_an_unknown_kind(store: JobStore) -> None:
    with pytest.raises(ValueError, match="unknown row kind"):
        store.save_rows("j1", "bogus", [], first=True)


def test_save_rows_rejects_an_unknown_column(store: JobStore) -> None:
    run(store, spec())
    with pytest.raises(ValueError, match="colour"):
        store.save_rows("j1", "frame_results", [{"frame_index": 0, "colour": 1}], first=True)


# JSON, text and times


JSON_VALUES = [
    {"nested": {"a": [1, 2, {"b": [None, True, False]}]}, "n": -3, "x": 2.5},
    {"unicode": "héllo wörld ✓ 日本語 🎉", "ключ": "значение"},
    {"empty_list": [], "empty_dict": {}, "empty_str": ""},
    {"big": 2**53 + 1, "small": 1e-300},
    [],
    {},
]


@pytest.mark.parametrize(
    "value", JSON_VALUES, ids=["nested", "unicode", "empties", "numbers", "list", "dict"]
)
def test_params_and_result_round_trip_as_json(store: JobStore, value: Any) -> None:
    params = value if isinstance(value, dict) else {"v": value}
    job = spec(params=params)
    finish(store, job, ok(value), "succeeded", run(store, job))
    r = row(store)
    assert r["params"] == params
    assert r["result"] == value


def test_nul_characters_and_nan_are_stored_as_valid_json(store: JobStore) -> None:
    job = spec(params={"text": "a\x00b"})
    started = run(store, job)
    finish(store, job, ok({"x": float("nan"), "s": "c\x00d"}), "succeeded", started)
    r = row(store)
    assert r["params"] == {"text": "a\ufffdb"}
    assert r["result"] == {"x": None, "s": "c\ufffdd"}


def test_an_error_message_with_nul_characters_is_stored(store: JobStore) -> None:
    started = run(store, spec())
    finish(store, spec(), err(message="bad\x00byte", traceback="tb\x00"), "failed", started)
    assert row(store)["error"] == "bad\ufffdbyte"
    assert store.attempts("j1")[0]["traceback"] == "tb\ufffd"


def test_times_are_returned_in_utc(store: JobStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    job = spec(queued_at=datetime(2026, 3, 1, 14, 0, tzinfo=plus2))
    started = datetime(2026, 3, 1, 14, 30, tzinfo=plus2)
    assert store.start(job, Q, "w1", started) == "run"
    r = row(store)
    assert r["queued_at"] == "2026-03-01T12:00:00+00:00"
    assert r["started_at"] == "2026-03-01T12:30:00+00:00"
    assert r["updated_at"].endswith("+00:00")


def test_naive_times_are_taken_as_utc(store: JobStore) -> None:
    assert store.start(spec(), Q, "w1", datetime(2026, 3, 1, 9, 15)) == "run"
    assert row(store)["started_at"] == "2026-03-01T09:15:00+00:00"


def test_finish_times_are_utc_and_after_the_start(store: JobStore) -> None:
    started = run(store, spec())
    finish(store, spec(), ok(1), "succeeded", started)
    r = row(store)
    finished = datetime.fromisoformat(r["finished_at"])
    assert finished.utcoffset() == timedelta(0)
    assert finished >= started


# Group commits: the writer thread's path for starts and successes


def start_op(job: Job, started: datetime, worker: str = "w1") -> Any:
    return ("start", (job, Q, worker, started), {})


def success_op(job: Job, result: Any, started: datetime, finished: datetime) -> Any:
    kwargs = {
        "attempt": job.attempts + 1,
        "worker_id": "w1",
        "outcome": ok(result),
        "status": "succeeded",
        "started_at": started,
        "finished_at": finished,
    }
    return ("finish", (job.id,), kwargs)


def test_a_start_and_its_success_in_one_commit_write_the_final_row(store: JobStore) -> None:
    started, finished = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    store.write_batch([start_op(spec(), started), success_op(spec(), {"n": 1}, started, finished)])
    r = row(store)
    assert (r["status"], r["result"], r["attempts"], r["progress"]) == (
        "succeeded",
        {"n": 1},
        1,
        1.0,
    )
    assert (r["started_at"], r["finished_at"]) == (started.isoformat(), finished.isoformat())
    assert (r["queued_at"], r["params"], r["worker_id"]) == (T0.isoformat(), {"text": "hi"}, "w1")
    assert [a["outcome"] for a in store.attempts("j1")] == ["succeeded"]


def test_a_commit_writes_the_same_row_whether_start_and_success_meet_or_not(
    store: JobStore,
) -> None:
    started, finished = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    together = spec("together")
    store.write_batch(
        [start_op(together, started), success_op(together, [1, "x"], started, finished)]
    )
    store.write_batch([start_op(spec("apart"), started)])
    assert row(store, "apart")["status"] == "running"
    store.write_batch([success_op(spec("apart"), [1, "x"], started, finished)])

    def comparable(job_id: str) -> dict[str, Any]:
        # The payload names its job's id: compared with the id taken out.
        values = {k: v for k, v in row(store, job_id).items() if k not in ("id", "updated_at")}
        return values | {"payload": values["payload"].replace(job_id, "ID")}

    assert comparable("together") == comparable("apart")


def test_a_commit_keeps_a_result_of_none_and_json_edge_values(store: JobStore) -> None:
    started = T0
    jobs = [spec(f"j{i}", params={"v": v}) for i, v in enumerate([None, *JSON_VALUES])]
    ops = [start_op(j, started) for j in jobs]
    ops += [success_op(j, j.params["v"], started, started) for j in jobs]
    store.write_batch(ops)
    for job in jobs:
        assert (row(store, job.id)["params"], row(store, job.id)["result"]) == (
            job.params,
            job.params["v"],
        )


def test_a_commit_stores_times_in_utc(store: JobStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    started = datetime(2026, 3, 1, 14, 30, tzinfo=plus2)
    naive_finish = datetime(2026, 3, 1, 12, 31)
    job = spec(queued_at=datetime(2026, 3, 1, 14, 0, tzinfo=plus2))
    store.write_batch([start_op(job, started), success_op(job, 1, started, naive_finish)])
    r = row(store)
    assert r["queued_at"] == "2026-03-01T12:00:00+00:00"
    assert r["started_at"] == "2026-03-01T12:30:00+00:00"
    assert r["finished_at"] == "2026-03-01T12:31:00+00:00"


def test_a_commit_never_turns_a_recorded_success_back_to_running(store: JobStore) -> None:
    finish(store, spec(), ok({"n": 1}), "succeeded", run(store, spec()))
    before = row(store)
    store.write_batch([start_op(spec(), datetime.now(UTC), worker="w2")])
    assert row(store) == before


def test_a_commit_of_many_jobs_records_each(store: JobStore) -> None:
    jobs = [spec(f"j{i}") for i in range(50)]
    store.write_batch([start_op(j, T0) for j in jobs[:25]])
    ops = [success_op(j, i, T0, T0) for i, j in enumerate(jobs[:25])]
    ops += [start_op(j, T0) for j in jobs[25:]]
    ops += [success_op(j, i, T0, T0) for i, j in enumerate(jobs[25:], 25)]
    store.write_batch(ops)
    assert [row(store, j.id)["result"] for j in jobs] == list(range(50))
    assert store.status_counts() == {"succeeded": 50}


def test_status_of_reports_a_broken_database_as_a_sqlalchemy_error(tmp_path: Any) -> None:
    from sqlalchemy.exc import OperationalError

    broken = JobStore(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: no table
    with pytest.raises(OperationalError, match="no such table"):
        broken.status_of("j1")
    broken.close()


# Reads


def test_a_row_is_one_json_object(store: JobStore) -> None:
    finish(store, spec(), ok({"a": [1]}), "succeeded", run(store, spec()))
    r = row(store)
    assert json.loads(json.dumps(r)) == r
    assert {"id", "queue", "processor", "params", "status", "attempts", "progress", "stage",
            "result", "error", "worker_id", "queued_at", "started_at", "finished_at",
            "updated_at"} <= r.keys()  # fmt: skip


def test_get_of_an_unknown_job_is_none(store: JobStore) -> None:
    assert store.get("nope") is None


def test_result_is_none_until_the_job_succeeds(store: JobStore) -> None:
    run(store, spec())
    assert store.result("j1") is None


def test_status_counts_count_jobs_by_status(store: JobStore) -> None:
    for i in range(3):
        store.enqueued(spec(f"q{i}"), Q)
    finish(store, spec("s"), ok(1), "succeeded", run(store, spec("s")))
    assert store.status_counts() == {"queued": 3, "succeeded": 1}


def test_a_reset_store_reconnects_on_the_next_call(store: JobStore) -> None:
    store.enqueued(spec(), Q)
    store.reset()
    assert row(store)["status"] == "queued"


def test_enqueued_again_resets_a_failed_job_for_another_run(store: JobStore) -> None:
    finish(store, spec(), err(), "failed", run(store, spec()))
    store.enqueued(spec(), Q)
    r = row(store)
    assert (r["status"], r["error"], r["finished_at"]) == ("queued", None, None)
