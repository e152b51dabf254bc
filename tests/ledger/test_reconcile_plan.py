"""The reconcile decision as a table: rows, what Redis holds, the clock -> what is restored."""

from __future__ import annotations

import json

import pytest

from worker.reconcile import Hold, LedgerRow, Restore, decide, payload_for, plan

NOW = 1_000_000.0
OLD = NOW - 60
STORED = json.dumps({"id": "j", "processor": "echo", "params": {"text": "hi"}, "timeout": 5})


def row(**kw: object) -> LedgerRow:
    base: dict[str, object] = {
        "id": "j",
        "status": "queued",
        "queue": "default",
        "payload": STORED,
        "processor": "echo",
        "params": {"text": "hi"},
        "updated_at": OLD,
    }
    return LedgerRow(**(base | kw))  # type: ignore[arg-type]


def run(r: LedgerRow, present: frozenset[str] = frozenset(), live: dict | None = None):
    return decide(r, present, live or {}, now=NOW, grace=10, default_queue="default")


@pytest.mark.parametrize(
    ("case", "r", "present", "live", "expected"),
    [
        ("queued and in Redis", row(), {"j"}, {}, None),
        ("queued and missing", row(), set(), {}, ("queue", "default", None)),
        (
            "queued with run_at ahead",
            row(run_at=NOW + 30),
            set(),
            {},
            ("scheduled", "default", NOW + 30),
        ),
        ("queued with run_at past", row(run_at=NOW - 30), set(), {}, ("queue", "default", None)),
        (
            "retrying missing",
            row(status="retrying", attempts=1, run_at=NOW + 5),
            set(),
            {},
            ("scheduled", "default", NOW + 5),
        ),
        (
            "retrying without due",
            row(status="retrying", attempts=1),
            set(),
            {},
            ("scheduled", "default", NOW),
        ),
        (
            "running, worker gone",
            row(status="running", worker_id="w1", attempts=1, started_at=OLD),
            set(),
            {},
            ("queue", "default", None),
        ),
        (
            "running, worker alive",
            row(status="running", worker_id="w1", attempts=1, started_at=OLD),
            set(),
            {"w1": OLD - 100},
            "hold",
        ),
        (
            "running, worker restarted since",
            row(status="running", worker_id="w1", attempts=1, started_at=OLD),
            set(),
            {"w1": OLD + 30},
            ("queue", "default", None),
        ),
        ("running and in flight", row(status="running", worker_id="w1"), {"j"}, {}, None),
        ("written moments ago", row(updated_at=NOW - 1), set(), {}, "hold"),
        (
            "unknown queue name falls back",
            row(queue="bad name!"),
            set(),
            {},
            ("queue", "default", None),
        ),
        ("other queue kept", row(queue="low"), set(), {}, ("queue", "low", None)),
        ("no payload, no processor", row(payload=None, processor=None), set(), {}, "hold"),
    ],
)
def test_decide_restores_exactly_what_redis_lost(
    case: str, r: LedgerRow, present: set, live: dict, expected: object
) -> None:
    action = run(r, frozenset(present), live)
    if expected is None:
        assert action is None, case
    elif expected == "hold":
        assert isinstance(action, Hold), case
    else:
        assert isinstance(action, Restore), case
        assert (action.where, action.queue, action.due) == expected, case


def test_a_finished_row_is_never_restored() -> None:
    for status in ("succeeded", "failed", "cancelled"):
        assert run(row(status=status)) is None


def test_a_retrying_job_is_restored_with_its_attempts_made() -> None:
    action = run(row(status="retrying", attempts=2, run_at=NOW))
    assert isinstance(action, Restore)
    assert json.loads(action.payload)["attempts"] == 2


def test_a_lost_running_attempt_is_not_charged() -> None:
    action = run(row(status="running", worker_id="w1", attempts=2, started_at=OLD))
    assert isinstance(action, Restore)
    assert json.loads(action.payload)["attempts"] == 1


def test_the_stored_payload_keeps_fields_the_columns_lack() -> None:
    action = run(row())
    assert isinstance(action, Restore)
    assert json.loads(action.payload)["timeout"] == 5 and not action.rebuilt


def test_a_row_without_payload_gets_one_rebuilt_from_its_columns() -> None:
    payload, rebuilt = payload_for(row(payload=None, max_attempts=4, queued_at=OLD), 0)
    assert rebuilt
    assert json.loads(payload or "") == {
        "id": "j",
        "processor": "echo",
        "params": {"text": "hi"},
        "max_attempts": 4,
        "queued_at": OLD,
    }


def test_the_restored_payload_has_no_run_at_the_due_time_is_the_score() -> None:
    stored = json.dumps({"id": "j", "processor": "echo", "run_at": NOW + 30})
    payload, _ = payload_for(row(payload=stored), 0)
    assert "run_at" not in json.loads(payload or "")


def test_a_running_job_whose_worker_looks_gone_waits_for_the_confirmation() -> None:
    r = row(status="running", worker_id="w1", attempts=1, started_at=OLD)
    first = plan([r], frozenset(), {}, now=NOW, grace=10, default_queue="default", confirm=15)
    assert first.restores == [] and first.suspects == {"j": NOW}
    later = plan(
        [r], frozenset(), {}, now=NOW + 15, grace=10, default_queue="default",
        suspects=first.suspects, confirm=15,
    )  # fmt: skip
    assert [x.job_id for x in later.restores] == ["j"]


def test_a_running_job_whose_worker_comes_back_is_no_longer_suspect() -> None:
    r = row(status="running", worker_id="w1", attempts=1, started_at=OLD)
    again = plan(
        [r], frozenset(), {"w1": OLD - 5}, now=NOW + 15, grace=10, default_queue="default",
        suspects={"j": NOW}, confirm=15,
    )  # fmt: skip
    assert again.restores == [] and again.suspects == {}


def test_restores_come_oldest_first() -> None:
    rows = [row(id="b", queued_at=OLD + 2), row(id="a", queued_at=OLD + 1)]
    out = plan(rows, frozenset(), {}, now=NOW, grace=10, default_queue="default")
    assert [r.job_id for r in out.restores] == ["a", "b"]


def test_a_row_that_cannot_be_rebuilt_is_reported_unrestorable() -> None:
    out = plan(
        [row(payload=None, processor=None)], frozenset(), {}, now=NOW, grace=10,
        default_queue="default",
    )  # fmt: skip
    assert out.unrestorable == ["j"] and out.restores == []
